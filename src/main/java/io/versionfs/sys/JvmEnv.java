package io.versionfs.sys;

import java.util.Map;

/**
 * What the launcher (bin/versionfs) put in our environment for the JVM alone, taken out again
 * for the job and hooks: {@code _JAVA_SR_SIGNUM} moves HotSpot's thread-suspend signal off
 * SIGUSR2, which versionfs forwards to the job (JFR's sampler would otherwise stop the mount).
 */
public final class JvmEnv {
    private JvmEnv() {}

    public static void clean(Map<String, String> env) {
        if (Boolean.getBoolean("versionfs.ownSrSignum")) env.remove("_JAVA_SR_SIGNUM");
    }

    /**
     * Says to the launcher that this JVM, which writes the class-data archive at its exit, ran a
     * whole run or mount: only such an archive holds the classes a start needs (bin/versionfs keeps
     * it; one of a run refused early is thrown away and the next run makes another).
     */
    public static void markTrainingRun() {
        String mark = System.getProperty("versionfs.cdsTrained");
        if (mark == null) return;
        try {
            java.nio.file.Files.write(java.nio.file.Path.of(mark), new byte[0]);
        } catch (java.io.IOException | RuntimeException e) {
            // no archive this time; a later run tries again
        }
    }
}
