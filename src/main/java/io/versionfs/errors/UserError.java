package io.versionfs.errors;

/**
 * A failure the user can fix: printed as one line ("versionfs: error: WHAT. FIX") with no stack
 * trace, and exits with {@link #code}.
 */
public final class UserError extends RuntimeException {
    public final int code;

    public UserError(int code, String message) {
        super(message);
        this.code = code;
    }
}
