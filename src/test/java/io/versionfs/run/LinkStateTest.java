package io.versionfs.run;

import io.versionfs.run.LinkState.Event;
import io.versionfs.sys.Errno;
import org.junit.jupiter.api.Test;

import static io.versionfs.run.LinkState.*;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** The target name's state machine, every transition, without a mount. */
class LinkStateTest {

    @Test
    void aServedNameCanBeReplacedRenamedAwayAndDeleted() {
        assertEquals(SERVED, SERVED.after(Event.RENAMED_ONTO), "an atomic save onto the target keeps it served");
        assertEquals(SERVED, SERVED.after(Event.CREATED));
        assertEquals(EMPTY, SERVED.after(Event.RENAMED_AWAY));
        assertEquals(EMPTY, SERVED.after(Event.UNLINKED));
        assertEquals(Errno.EEXIST.code, SERVED.refusal(Event.LINKED_ONTO), "link(2) never replaces");
        assertEquals(SERVED, SERVED.after(Event.LINKED_ONTO));
    }

    @Test
    void anEmptyNameIsAbsentToTheJobUntilItCreatesOne() {
        assertEquals(Errno.ENOENT.code, EMPTY.refusal(Event.RENAMED_AWAY));
        assertEquals(Errno.ENOENT.code, EMPTY.refusal(Event.UNLINKED));
        assertEquals(EMPTY, EMPTY.after(Event.UNLINKED));
        assertEquals(SERVED, EMPTY.after(Event.CREATED));
        assertEquals(SERVED, EMPTY.after(Event.RENAMED_ONTO));
        assertEquals(SERVED, EMPTY.after(Event.LINKED_ONTO));
    }

    @Test
    void namesThatAreNotOursAreLeftToTheKernelUntilOurLinkIsBack() {
        for (LinkState s : new LinkState[] {RENAMED, RENAMED_NEW, REPLACED, DELETED}) {
            assertFalse(s.ours(), s.name());
            assertEquals(-1, s.refusal(Event.RENAMED_ONTO), s.name());
            assertEquals(s, s.after(Event.UNLINKED), s.name());
        }
        assertEquals(EMPTY, DELETED.after(Event.LINK_PUT_BACK));
        assertEquals(EMPTY, RENAMED.after(Event.LINK_PUT_BACK));
        assertEquals(REPLACED, REPLACED.after(Event.LINK_PUT_BACK), "never over the job's own file");
        assertEquals(Errno.EEXIST.code, SERVED.refusal(Event.LINK_PUT_BACK));
    }

    @Test
    void observedFromWhatIsThere() {
        assertEquals(SERVED, observe(true, true, true, false));
        assertEquals(EMPTY, observe(true, false, true, false));
        assertEquals(RENAMED, observe(false, false, false, true));
        assertEquals(RENAMED_NEW, observe(false, false, true, true));
        assertEquals(REPLACED, observe(false, false, true, false));
        assertEquals(DELETED, observe(false, false, false, false));
        assertTrue(RENAMED_NEW.renamed());
        assertNull(SERVED.eventName());
        assertEquals("symlink-replaced", REPLACED.eventName());
    }
}
