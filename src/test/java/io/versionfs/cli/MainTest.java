package io.versionfs.cli;

import org.junit.jupiter.api.Test;
import picocli.CommandLine;
import picocli.CommandLine.Command;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

class MainTest {
    /** The lookup by class name finds each subcommand Main's annotation lists, and only those. */
    @Test
    void subcommandLookupFindsExactlyMainsList() throws IOException {
        Set<String> listed = new TreeSet<>();
        for (Class<?> c : Main.class.getAnnotation(Command.class).subcommands()) {
            if (c == CommandLine.HelpCommand.class) continue;
            String name = c.getAnnotation(Command.class).name();
            listed.add(c.getSimpleName());
            assertEquals(c, Main.subcommand(name), name);
        }
        // Every *Command class of this package is listed (one the lookup would find but picocli's
        // full command line would not know is a mistake).
        Set<String> sources;
        try (Stream<Path> s = Files.list(Path.of("src/main/java/io/versionfs/cli"))) {
            sources = s.map(p -> p.getFileName().toString()).filter(n -> n.endsWith("Command.java"))
                    .map(n -> n.substring(0, n.length() - ".java".length())).collect(Collectors.toCollection(TreeSet::new));
        }
        assertEquals(listed, sources);
        assertNull(Main.subcommand("help"));
        assertNull(Main.subcommand("Run"));
        assertNull(Main.subcommand("--help"));
        assertNull(Main.subcommand(""));
        assertNull(Main.subcommand("nosuch"));
    }

    @Test
    void onlyTheMountingCommandsPrepareAhead() {
        assertTrue(Main.mounts(new String[] {"run", "--target", "f", "--", "true"}));
        assertTrue(Main.mounts(new String[] {"mount", "--target", "f", "mp"}));
        assertTrue(Main.mounts(new String[] {"run", "--target", "f", "--", "prog", "--help"}));
        assertFalse(Main.mounts(new String[] {"run", "--help"}));
        assertFalse(Main.mounts(new String[] {"list", "x"}));
        assertFalse(Main.mounts(new String[0]));
    }
}
