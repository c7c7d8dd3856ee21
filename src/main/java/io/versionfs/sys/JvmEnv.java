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
}
