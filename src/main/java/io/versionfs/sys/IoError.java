package io.versionfs.sys;

/**
 * Why a file operation failed, as data: the kernel's errno and what versionfs was doing. Callers
 * decide on {@link #errno} ({@link #noSpace()}, {@link #cancelled()}); {@link #toString()} is for
 * people only.
 */
public record IoError(int errno, String what) {
    /** A copy versionfs stopped itself (the run is ending, or the copy became pointless). */
    public static final IoError CANCELLED = new IoError(Errno.ECANCELED.code, "cancelled");

    /** The calling thread's errno after a failed call doing {@code what}. */
    public static IoError last(String what) {
        return new IoError(Posix.errno(), what);
    }

    /** An error that is not a kernel call's (e.g. an unexpected exception), kept as EIO. */
    public static IoError of(Throwable t) {
        return new IoError(Errno.EIO.code, String.valueOf(t));
    }

    /** Disk full or quota exceeded: the job's writes come first, versions give way. */
    public boolean noSpace() {
        return Errno.isNoSpace(errno);
    }

    public boolean cancelled() {
        return Errno.ECANCELED.is(errno);
    }

    /** This error as an IOException, for code on the JDK's file API; {@link Errno#isNoSpace(java.io.IOException)} reads it back. */
    public Thrown thrown() {
        return new Thrown(this);
    }

    /** An IOException that keeps its errno. */
    public static final class Thrown extends java.io.IOException {
        public final transient IoError error;

        Thrown(IoError error) {
            super(error.toString());
            this.error = error;
        }
    }

    @Override
    public String toString() {
        return cancelled() ? what : what + ": " + Posix.strerror(errno);
    }
}
