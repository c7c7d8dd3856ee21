package io.versionfs.trap;

import io.versionfs.sys.Errno;
import io.versionfs.trap.Name.Kind;
import io.versionfs.trap.NameCall.Op;
import io.versionfs.trap.TrapRules.Action;
import io.versionfs.trap.TrapRules.Decision;
import io.versionfs.trap.TrapRules.Facts;
import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** Every rule of the trap, without a mount: which calls run natively, which versionfs does, which are refused. */
class TrapRulesTest {
    private static final Facts TARGET = new Facts(0, Kind.SYMLINK, false, false), OTHER_TARGET = new Facts(1, Kind.SYMLINK, false, false),
            FILE = new Facts(-1, Kind.FILE, false, false), NOTHING = new Facts(-1, null, false, false),
            DIR = new Facts(-1, Kind.DIR, false, false), LINK = new Facts(-1, Kind.SYMLINK, false, false),
            ANCHOR = new Facts(-1, Kind.DIR, true, false), IN_VERSIONS = new Facts(-1, Kind.FILE, false, true);

    private static Decision d(Op op, int flags, Facts src, Facts dst) {
        return TrapRules.decide(op, flags, src, dst);
    }

    @Test
    void callsOnOtherNamesRunNatively() {
        assertEquals(Action.PROCEED, d(Op.RENAME, 0, FILE, NOTHING).action());
        assertEquals(Action.PROCEED, d(Op.RENAME, 0, FILE, FILE).action());
        assertEquals(Action.PROCEED, d(Op.UNLINK, 0, FILE, null).action());
        assertEquals(Action.PROCEED, d(Op.LINK, 0, FILE, NOTHING).action());
        assertEquals(Action.PROCEED, d(Op.RMDIR, 0, DIR, null).action());
    }

    @Test
    void aFileRenamedOntoTheTargetIsAVersion() {
        assertEquals(Action.RENAME_ONTO, d(Op.RENAME, 0, FILE, TARGET).action());
        assertEquals(Action.RENAME_ONTO, d(Op.RENAME, NameCall.RENAME_NOREPLACE, FILE, TARGET).action());
        assertEquals(new Decision(Action.REFUSE, Errno.ENOENT.code, TrapRules.Why.NONE), d(Op.RENAME, 0, NOTHING, TARGET));
        assertEquals(Errno.ENOTDIR.code, d(Op.RENAME, 0, DIR, TARGET).errno());
        // a symlink may be one of our hard links of the target: the handler looks (others proceed)
        assertEquals(Action.RENAME_ONTO, d(Op.RENAME, 0, LINK, TARGET).action());
        assertEquals(Action.PROCEED, d(Op.RENAME, 0, new Facts(-1, Kind.OTHER, false, false), TARGET).action());
    }

    @Test
    void theTargetRenamedAwayOrDeletedIsDoneByVersionfs() {
        assertEquals(Action.RENAME_AWAY, d(Op.RENAME, 0, TARGET, NOTHING).action());
        assertEquals(Action.RENAME_AWAY, d(Op.RENAME, 0, TARGET, FILE).action());
        assertEquals(Errno.EISDIR.code, d(Op.RENAME, 0, TARGET, DIR).errno());
        assertEquals(Action.UNLINK_TARGET, d(Op.UNLINK, 0, TARGET, null).action());
        assertEquals(Action.RENAME_TARGET_ONTO_TARGET, d(Op.RENAME, 0, TARGET, OTHER_TARGET).action());
        assertEquals(Action.PROCEED, d(Op.RENAME, 0, TARGET, TARGET).action(), "rename onto itself is a no-op");
    }

    @Test
    void linksOfTheTargetAreCopiesAndLinksOntoItNeedAnEmptyName() {
        assertEquals(Action.LINK_OUT, d(Op.LINK, 0, TARGET, NOTHING).action());
        assertEquals(Errno.EEXIST.code, d(Op.LINK, 0, TARGET, FILE).errno());
        assertEquals(Action.LINK_ONTO, d(Op.LINK, 0, FILE, TARGET).action());
        assertEquals(Errno.EPERM.code, d(Op.LINK, 0, DIR, TARGET).errno());
        assertEquals(Action.LINK_TARGET_ONTO_TARGET, d(Op.LINK, 0, TARGET, OTHER_TARGET).action());
        assertEquals(Errno.EEXIST.code, d(Op.LINK, 0, TARGET, TARGET).errno());
    }

    @Test
    void whatTheRunStandsOnIsBusy() {
        for (Op op : new Op[] {Op.RENAME, Op.RMDIR, Op.UNLINK}) {
            Decision dec = d(op, 0, ANCHOR, op == Op.RENAME ? NOTHING : null);
            assertEquals(Errno.EBUSY.code, dec.errno(), op.name());
            assertEquals(TrapRules.Why.ANCHOR, dec.why());
        }
        assertEquals(TrapRules.Why.VERSIONS_FOLDER, d(Op.UNLINK, 0, IN_VERSIONS, null).why());
        assertEquals(Errno.EBUSY.code, d(Op.RENAME, 0, FILE, IN_VERSIONS).errno(), "nothing is renamed onto a version");
        assertEquals(Errno.EBUSY.code, d(Op.LINK, 0, IN_VERSIONS, NOTHING).errno(), "no writable name for a version");
    }

    @Test
    void exchangeAndWhiteoutOnATargetAreRefused() {
        assertEquals(Errno.EINVAL.code, d(Op.RENAME, NameCall.RENAME_EXCHANGE, FILE, TARGET).errno());
        assertEquals(Errno.EINVAL.code, d(Op.RENAME, NameCall.RENAME_WHITEOUT, TARGET, NOTHING).errno());
        assertEquals(Action.PROCEED, d(Op.RENAME, NameCall.RENAME_EXCHANGE, FILE, FILE).action());
    }

    @Test
    void ioUringIsSaidAndAllowed() {
        assertEquals(Action.WARN_IO_URING, d(Op.IO_URING, 0, null, null).action());
    }
}
