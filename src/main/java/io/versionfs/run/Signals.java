package io.versionfs.run;

import io.versionfs.text.Log;
import sun.misc.Signal;

import java.util.ArrayList;
import java.util.List;
import java.util.function.Consumer;

/**
 * Catches the signals a batch system or a user sends (TERM, INT, HUP, USR1, USR2) so that
 * versionfs decides what happens: forward to the job, then clean up. Without this the JVM would
 * exit on TERM with the filesystem still mounted.
 */
public final class Signals {
    public static final List<String> HANDLED = List.of("TERM", "INT", "HUP", "USR1", "USR2");

    private Signals() {}

    /** Installs {@code handler} for every signal in {@link #HANDLED} that the JVM lets us take. */
    public static List<String> install(Consumer<Signal> handler) {
        List<String> installed = new ArrayList<>();
        for (String name : HANDLED) {
            try {
                Signal.handle(new Signal(name), handler::accept);
                installed.add(name);
            } catch (IllegalArgumentException e) {
                Log.debug("cannot handle SIG" + name + ": " + e.getMessage());
            }
        }
        return installed;
    }

    public static String name(int number) {
        return switch (number) {
            case 1 -> "SIGHUP";
            case 2 -> "SIGINT";
            case 3 -> "SIGQUIT";
            case 4 -> "SIGILL";
            case 6 -> "SIGABRT";
            case 7 -> "SIGBUS";
            case 8 -> "SIGFPE";
            case 9 -> "SIGKILL";
            case 10 -> "SIGUSR1";
            case 11 -> "SIGSEGV";
            case 12 -> "SIGUSR2";
            case 13 -> "SIGPIPE";
            case 14 -> "SIGALRM";
            case 15 -> "SIGTERM";
            case 24 -> "SIGXCPU";
            default -> "signal " + number;
        };
    }
}
