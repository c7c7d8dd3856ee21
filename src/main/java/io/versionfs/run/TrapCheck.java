package io.versionfs.run;

import io.versionfs.sys.Seccomp;
import io.versionfs.trap.NameTrap;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;

/**
 * Whether the name trap works on this node, tried for real: a thread installs the filter and
 * starts {@code mv a b}; the rename must be trapped, answered, and done.
 */
final class TrapCheck {
    record Result(boolean works, String detail) {}

    private TrapCheck() {}

    static Result probe(Path scratch) {
        if (!Seccomp.supportedArch()) return new Result(false, "no syscall trap for " + System.getProperty("os.arch"));
        try {
            Files.writeString(scratch.resolve("a"), "a");
        } catch (IOException e) {
            return new Result(false, "cannot write in " + scratch + ": " + e.getMessage());
        }
        NameTrap trap = NameTrap.prepare(new NameTrap.Scope(List.of(), Set.of(), Set.of()), null);
        CompletableFuture<String> outcome = new CompletableFuture<>();
        // A thread of its own: the filter stays with it, and it ends right after.
        Thread t = new Thread(() -> outcome.complete(renameUnderTrap(trap, scratch)), "versionfs-doctor-trap");
        t.setDaemon(true);
        t.start();
        String err;
        try {
            err = outcome.get(20, TimeUnit.SECONDS);
        } catch (Exception e) {
            err = "no answer within 20 s";
        } finally {
            trap.close();
        }
        if (err != null) return new Result(false, err);
        if (!Files.exists(scratch.resolve("b")) || trap.trappedCalls() < 1) {
            return new Result(false, "the filter was installed but the rename was not seen");
        }
        return new Result(true, "a rename was held and answered (seccomp user notification)");
    }

    private static String renameUnderTrap(NameTrap trap, Path scratch) {
        try {
            trap.installHere();
        } catch (Seccomp.TrapUnavailable e) {
            return e.getMessage();
        }
        try {
            Process p = io.versionfs.sys.Spawns.start(new ProcessBuilder("mv", "a", "b").directory(scratch.toFile()).redirectErrorStream(true));
            if (!p.waitFor(10, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return "mv did not finish within 10 s under the trap";
            }
            String out = new String(p.getInputStream().readAllBytes()).trim();
            return p.exitValue() == 0 ? null : "mv under the trap failed: " + out;
        } catch (IOException e) {
            return "cannot start mv: " + e.getMessage();
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return "interrupted";
        }
    }
}
