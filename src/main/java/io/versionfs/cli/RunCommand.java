package io.versionfs.cli;

import picocli.CommandLine.Command;

import java.util.concurrent.Callable;

@Command(name = "run", description = "Run a command with a target file versioned (coming next).")
final class RunCommand implements Callable<Integer> {
    @Override
    public Integer call() {
        throw new UserError(ExitCodes.USAGE, "run is not implemented yet");
    }
}
