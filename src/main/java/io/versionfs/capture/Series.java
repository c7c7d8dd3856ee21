package io.versionfs.capture;

/**
 * One numbered version series: a versions folder and the name the versions are numbered under
 * ({@code job.gbw} gives {@code job.000001.gbw}, ...). A live file belongs to at most one series
 * at a time; a rename can move it to another series or out of every series.
 */
public record Series(VersionStore store, String name) {
    @Override
    public String toString() {
        return store.dir().resolve(name).toString();
    }
}
