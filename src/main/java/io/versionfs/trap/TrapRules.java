package io.versionfs.trap;

import io.versionfs.sys.Errno;
import io.versionfs.trap.NameCall.Op;

/**
 * What to do with one trapped call, decided from facts alone (no file is touched here, so every
 * rule is unit-tested without a mount). The principle: a call that touches no target name, no
 * folder a run is anchored at and nothing inside a versions folder runs natively; a call on a
 * target name is done by versionfs, with the result the job would have had on a plain file; a
 * call that would move or remove what the run stands on is refused with EBUSY, the errno the
 * kernel itself gives for a busy mount point.
 */
public final class TrapRules {

    public enum Action {
        /** Let the kernel run the call (the common case: not ours). */
        PROCEED,
        /** Answer with an errno, doing nothing. */
        REFUSE,
        /** A file renamed onto a target: its new content, one version. */
        RENAME_ONTO,
        /** The target renamed away: the new name gets the content, the target name is empty. */
        RENAME_AWAY,
        /** One target renamed onto another. */
        RENAME_TARGET_ONTO_TARGET,
        UNLINK_TARGET,
        /** A hard link of a target: a copy of its content (its inode lives in the mount). */
        LINK_OUT,
        /** A hard link onto an empty target name: that file is the target's new content. */
        LINK_ONTO,
        /** One target hard-linked onto another's empty name. */
        LINK_TARGET_ONTO_TARGET,
        /** io_uring set up: its renames would bypass the trap; say so, then proceed. */
        WARN_IO_URING
    }

    /** What the rules need to know of one name of a call. {@code target}: which target it is (-1: none). */
    public record Facts(int target, Name.Kind kind, boolean anchor, boolean inVersions) {
        public static final Facts NONE = new Facts(-1, null, false, false);

        boolean isTarget() {
            return target >= 0;
        }
    }

    public record Decision(Action action, int errno, Why why) {
        static Decision of(Action a) {
            return new Decision(a, 0, Why.NONE);
        }

        static Decision refuse(int errno, Why why) {
            return new Decision(Action.REFUSE, errno, why);
        }
    }

    /** Why a call was refused, when the job deserves to hear it (said once per kind). */
    public enum Why {
        NONE,
        VERSIONS_FOLDER("the job tried to move, delete or write into a versions folder while versionfs uses it"),
        ANCHOR("the job tried to move or remove a folder that holds a target or a versions folder while versionfs uses it"),
        UNSUPPORTED_FLAG("the job asked renameat2 to exchange or white out a target, which versionfs does not do");

        public final String text;

        Why() {
            this("");
        }

        Why(String text) {
            this.text = text;
        }
    }

    private TrapRules() {}

    public static Decision decide(Op op, int flags, Facts src, Facts dst) {
        if (op == Op.IO_URING) return Decision.of(Action.WARN_IO_URING);
        if (dst == null) dst = Facts.NONE;
        if (src.inVersions() || dst.inVersions()) return Decision.refuse(Errno.EBUSY.code, Why.VERSIONS_FOLDER);
        if (src.anchor() || dst.anchor()) return Decision.refuse(Errno.EBUSY.code, Why.ANCHOR);
        return switch (op) {
            case RMDIR -> Decision.of(Action.PROCEED);
            case UNLINK -> Decision.of(src.isTarget() ? Action.UNLINK_TARGET : Action.PROCEED);
            case RENAME -> rename(flags, src, dst);
            case LINK -> link(src, dst);
            case IO_URING -> throw new AssertionError();
        };
    }

    private static Decision rename(int flags, Facts src, Facts dst) {
        if (!src.isTarget() && !dst.isTarget()) return Decision.of(Action.PROCEED);
        if ((flags & (NameCall.RENAME_EXCHANGE | NameCall.RENAME_WHITEOUT)) != 0) {
            return Decision.refuse(Errno.EINVAL.code, Why.UNSUPPORTED_FLAG);
        }
        if (src.isTarget() && src.target() == dst.target()) return Decision.of(Action.PROCEED); // same name: a no-op
        if (src.isTarget() && dst.isTarget()) return Decision.of(Action.RENAME_TARGET_ONTO_TARGET);
        if (src.isTarget()) {
            return dst.kind() == Name.Kind.DIR ? Decision.refuse(Errno.EISDIR.code, Why.NONE) : Decision.of(Action.RENAME_AWAY);
        }
        if (src.kind() == null) return Decision.refuse(Errno.ENOENT.code, Why.NONE);
        if (src.kind() == Name.Kind.DIR) return Decision.refuse(Errno.ENOTDIR.code, Why.NONE);
        // A symlink may be a hard link the job made of the target (our symlink to a second name
        // of its file): the handler looks. Another symlink or a special file renamed onto the
        // target replaces our link: the follow logic notices it and the live content is kept.
        return Decision.of(src.kind() == Name.Kind.OTHER ? Action.PROCEED : Action.RENAME_ONTO);
    }

    private static Decision link(Facts src, Facts dst) {
        if (!src.isTarget() && !dst.isTarget()) return Decision.of(Action.PROCEED);
        if (src.isTarget() && src.target() == dst.target()) return Decision.refuse(Errno.EEXIST.code, Why.NONE);
        if (src.isTarget() && dst.isTarget()) return Decision.of(Action.LINK_TARGET_ONTO_TARGET);
        if (src.isTarget()) return dst.kind() != null ? Decision.refuse(Errno.EEXIST.code, Why.NONE) : Decision.of(Action.LINK_OUT);
        if (src.kind() == null) return Decision.refuse(Errno.ENOENT.code, Why.NONE);
        if (src.kind() == Name.Kind.DIR) return Decision.refuse(Errno.EPERM.code, Why.NONE);
        return Decision.of(src.kind() == Name.Kind.FILE ? Action.LINK_ONTO : Action.PROCEED);
    }
}
