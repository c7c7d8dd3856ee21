package io.versionfs.capture;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.Strictness;
import com.google.gson.TypeAdapter;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;

import java.io.IOException;
import java.io.StringReader;
import java.time.Instant;
import java.util.List;

/**
 * One line of {@code manifest.jsonl}, the only type that writes or reads it: a version (saved,
 * lost, pruned; {@code event} null) or an event (a rename, a skipped close, a hook's exit...).
 * Absent fields are null and are not written. The field names are the documented format;
 * {@code v} is its version (1; lines written before it existed have none and read the same).
 *
 * <p>Reading is strict (one JSON object, nothing after it, types as declared) so that a line
 * cut short by a crash or a garbage line is reported and skipped, never half-understood.
 */
public record ManifestLine(
        Integer v,
        String event,
        Long version,
        String file,
        String path,
        Long size,
        String sha256,
        Long same_as,
        String time,
        Integer pid,
        String cmdline,
        String reason,
        String status,
        String error,
        Boolean dropped,
        String pruned,
        String why,
        String detail,
        String from,
        String to,
        String by,
        Integer exit,
        Double seconds,
        Long from_pid,
        List<String> into,
        String host) {

    public static final int FORMAT = 1;
    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().create();
    private static final TypeAdapter<ManifestLine> ADAPTER = GSON.getAdapter(ManifestLine.class);

    /** A version line (not an event). */
    public boolean isVersion() {
        return event == null && version != null;
    }

    public boolean saved() {
        return isVersion() && "saved".equals(status);
    }

    /**
     * Why this line cannot be used, or null: it must be a version or an event, and a path must
     * name a file inside the versions folder (a manifest can be edited by anyone who can write
     * the folder: prune must never delete, nor restore read, a file elsewhere).
     */
    public String problem() {
        if (event == null && version == null) return "neither a version nor an event";
        if (path != null && !insideFolder(path)) return "its path leads out of the versions folder: " + path;
        if (isVersion() && "saved".equals(status) && path == null) return "a saved version without a path";
        return null;
    }

    /** A relative path with no empty, ".", ".." or ".versionfs" part. */
    static boolean insideFolder(String p) {
        if (p.isEmpty() || p.startsWith("/") || p.indexOf('\0') >= 0) return false;
        for (String part : p.split("/", -1)) {
            if (part.isEmpty() || part.equals(".") || part.equals("..") || part.equals(".versionfs")) return false;
        }
        return true;
    }

    public Instant instant() {
        try {
            return time == null ? null : Instant.parse(time);
        } catch (RuntimeException e) {
            return null;
        }
    }

    public String toJson() {
        return GSON.toJson(this);
    }

    /** As an ordered map (for documents that embed a line and add to it, e.g. the summary). */
    public java.util.Map<String, Object> toMap() {
        return io.versionfs.text.Json.parseObject(toJson());
    }

    /** Parses one line; throws {@link IllegalArgumentException} with the reason if it is not one. */
    public static ManifestLine parse(String line) {
        try {
            JsonReader r = new JsonReader(new StringReader(line));
            r.setStrictness(Strictness.STRICT);
            if (r.peek() != JsonToken.BEGIN_OBJECT) throw new IllegalArgumentException("not a JSON object");
            ManifestLine m = ADAPTER.read(r);
            if (r.peek() != JsonToken.END_DOCUMENT) throw new IllegalArgumentException("data after the object");
            return m;
        } catch (IllegalArgumentException e) {
            throw e; // ours, with its reason
        } catch (IOException | RuntimeException e) {
            throw new IllegalArgumentException("not valid JSON for a manifest line: " + e.getMessage(), e);
        }
    }

    public static Builder event(String name) {
        return new Builder().event(name);
    }

    public static Builder version(long number, String file) {
        return new Builder().version(number).file(file);
    }

    public Builder toBuilder() {
        return new Builder(this);
    }

    /** Builds a line; {@link #build} stamps the format and, if not set, the time. */
    public static final class Builder {
        private String event, file, path, sha256, time, cmdline, reason, status, error, pruned, why, detail, from, to, by;
        private Long version, size, sameAs, fromPid;
        private Integer pid, exit;
        private Boolean dropped;
        private Double seconds;
        private List<String> into;
        private String host;

        Builder() {}

        Builder(ManifestLine m) {
            event = m.event; version = m.version; file = m.file; path = m.path; size = m.size; sha256 = m.sha256;
            sameAs = m.same_as; time = m.time; pid = m.pid; cmdline = m.cmdline; reason = m.reason; status = m.status;
            error = m.error; dropped = m.dropped; pruned = m.pruned; why = m.why; detail = m.detail; from = m.from;
            to = m.to; by = m.by; exit = m.exit; seconds = m.seconds; fromPid = m.from_pid; into = m.into;
            host = m.host;
        }

        public Builder event(String v) { event = v; return this; }
        public Builder version(long v) { version = v; return this; }
        public Builder file(String v) { file = v; return this; }
        public Builder path(String v) { path = v; return this; }
        public Builder size(long v) { size = v; return this; }
        public Builder sha256(String v) { sha256 = v; return this; }
        public Builder sameAs(long v) { sameAs = v; return this; }
        public Builder time(Instant v) { time = Version.ISO_MILLIS.format(v); return this; }
        public Builder pid(long v) { pid = (int) v; return this; }
        public Builder cmdline(String v) { cmdline = v; return this; }
        public Builder reason(String v) { reason = v; return this; }
        public Builder status(String v) { status = v; return this; }
        public Builder error(String v) { error = v; return this; }
        public Builder dropped(boolean v) { dropped = v; return this; }
        public Builder pruned(String v) { pruned = v; return this; }
        public Builder why(String v) { why = v; return this; }
        public Builder detail(String v) { detail = v; return this; }
        public Builder from(String v) { from = v; return this; }
        public Builder to(String v) { to = v; return this; }
        public Builder by(String v) { by = v; return this; }
        public Builder exit(int v) { exit = v; return this; }
        public Builder seconds(double v) { seconds = v; return this; }
        public Builder fromPid(long v) { fromPid = v; return this; }
        public Builder into(List<String> v) { into = List.copyOf(v); return this; }
        /** The node that wrote the line (jobs on several nodes). */
        public Builder host(String v) { host = v; return this; }

        public ManifestLine build() {
            String t = time != null ? time : Version.ISO_MILLIS.format(Instant.now());
            return new ManifestLine(FORMAT, event, version, file, path, size, sha256, sameAs, t, pid, cmdline, reason,
                    status, error, dropped, pruned, why, detail, from, to, by, exit, seconds, fromPid, into, host);
        }
    }
}
