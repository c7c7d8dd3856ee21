package io.versionfs.run;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;
import org.junit.jupiter.api.Test;

import java.util.Map;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** How long the agents on the other nodes get to say they are ready: $VERSIONFS_AGENT_DEADLINE seconds, else 60. */
class AgentDeadlineTest {
    private static long millis(Map<String, String> env) {
        return Agents.readyMillis(new SlurmContext(env));
    }

    @Test
    void sixtySecondsUnlessTheVariableSaysOtherwise() {
        assertEquals(60_000, millis(Map.of()));
        assertEquals(60_000, millis(Map.of(Agents.DEADLINE_VAR, " ")));
        assertEquals(5_000, millis(Map.of(Agents.DEADLINE_VAR, "5")));
        assertEquals(600_000, millis(Map.of(Agents.DEADLINE_VAR, " 600 ")));
    }

    @Test
    void aValueThatIsNoNumberOfSecondsIsAUsageErrorNamingTheVariable() {
        for (String bad : new String[] {"0", "-3", "5s", "1.5", "86401"}) {
            UserError e = assertThrows(UserError.class, () -> millis(Map.of(Agents.DEADLINE_VAR, bad)), bad);
            assertEquals(ExitCodes.USAGE, e.code, bad);
            assertTrue(e.getMessage().startsWith("VERSIONFS_AGENT_DEADLINE must be a number of seconds between 1 and 86400,"
                    + " not '" + bad + "'"), e.getMessage());
        }
    }
}
