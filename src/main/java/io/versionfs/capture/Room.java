package io.versionfs.capture;

/**
 * What the file system asks of a versions folder when space runs short. The job's writes come
 * first: a close is not kept as a version rather than leave the job without room, and versions of
 * this run give way, oldest first (the content before the run last), when the job's write finds
 * the disk full. The one door for that; {@link GiveWay} is behind it.
 */
public interface Room {
    /**
     * The headroom guard, before a version of {@code diskBytes} is taken: true when keeping it
     * would leave less than the headroom free; the close is then recorded as skipped (a manifest
     * line, counted in the summary).
     */
    boolean skipIfLow(String series, String reason, int pid, long diskBytes);

    /**
     * The job's write found the disk full: gives up the oldest version of this run that holds
     * blocks of its own (one sharing the live file frees nothing), records it lost with the
     * reason, and answers true so the write can be retried; false if none is left.
     */
    boolean dropOne();

    /**
     * A saved version that cannot be kept after all (no room to keep it apart from the live file,
     * or changed while copied): its file is removed and the manifest says why.
     */
    void giveUp(Version v, String why);

    /** {@code v} still shares its storage with the final file (no room, or no time, to copy it apart): recorded. */
    void stillShared(Version v, String why);

    /**
     * Whether an optional copy of {@code size} bytes onto the filesystem of {@code fd} (a
     * background copy-on-write copy) leaves the default headroom for the job: it must never take
     * the job's last free space. True when the space cannot be read.
     */
    static boolean forOptionalCopy(int fd, long size) {
        return Headroom.roomForOptionalCopy(fd, size);
    }
}
