package io.versionfs.report;

import io.versionfs.text.Json;

/**
 * One JSON array printed element by element, as {@code println(Json.write(list))} prints the
 * whole list (no spaces, a newline after the closing bracket): a command listing a million
 * versions need not hold them all to print them.
 */
public final class JsonArrayOut {
    private final Out out;
    private boolean any;

    private JsonArrayOut(Out out) {
        this.out = out;
    }

    /** Prints the opening bracket. */
    public static JsonArrayOut begin(Out out) {
        out.print("[");
        return new JsonArrayOut(out);
    }

    /** An element given as a value ({@link Json#write} makes its text). */
    public void add(Object value) {
        addJson(Json.write(value));
    }

    /** An element given as its JSON text. */
    public void addJson(String json) {
        if (any) out.print(",");
        any = true;
        out.print(json);
    }

    /** Prints the closing bracket and the newline. */
    public void end() {
        out.println("]");
    }
}
