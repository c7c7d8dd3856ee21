package io.versionfs.cli;

import io.versionfs.run.AgentSession;
import picocli.CommandLine.Command;
import picocli.CommandLine.Option;

import java.nio.file.Path;
import java.util.concurrent.Callable;

/**
 * {@code versionfs agent} (hidden): started by {@code versionfs run} on each other node of a job
 * on several nodes, as one Slurm step ({@code srun --overlap}); not for people to run.
 */
@Command(name = "agent", hidden = true, mixinStandardHelpOptions = true,
        description = "Serve a multi-node job's targets on this node (started by 'versionfs run'; not for direct use).")
public final class AgentCommand implements Callable<Integer> {
    @Option(names = "--control", required = true, paramLabel = "DIR",
            description = "The job's control folder in the versions folder (agents.json, ready/done files).")
    Path control;

    @Override
    public Integer call() throws Exception {
        return new AgentSession(control).execute();
    }
}
