package io.versionfs.text;

import com.google.gson.Gson;
import com.google.gson.GsonBuilder;
import com.google.gson.JsonArray;
import com.google.gson.JsonElement;
import com.google.gson.JsonObject;
import com.google.gson.JsonPrimitive;
import com.google.gson.JsonSerializer;
import com.google.gson.Strictness;
import com.google.gson.stream.JsonReader;
import com.google.gson.stream.JsonToken;

import java.io.StringReader;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * JSON for {@code --json} output and our small state files (the run lock's holder, a run's
 * recovery record), on Gson. The manifest has its own typed line
 * (capture.ManifestLine); this is for documents whose shape varies: an
 * ordered object builder, and a strict parser to plain maps and lists (integers as Long).
 */
public final class Json {
    private Json() {}

    private static final Gson GSON = new GsonBuilder().disableHtmlEscaping().serializeNulls()
            .registerTypeAdapter(Obj.class, (JsonSerializer<Obj>) (o, t, ctx) -> ctx.serialize(o.fields))
            .create();

    /** Ordered JSON object; values may be String, Number, Boolean, null, Map, List, or Obj. */
    public static final class Obj {
        final Map<String, Object> fields = new LinkedHashMap<>();

        public Obj put(String key, Object value) {
            fields.put(key, value);
            return this;
        }

        public Map<String, Object> asMap() {
            return fields;
        }

        @Override
        public String toString() {
            return write(this);
        }
    }

    public static Obj obj() {
        return new Obj();
    }

    public static String write(Object value) {
        return GSON.toJson(value);
    }

    /**
     * Parses one JSON value, strictly (nothing after it); objects become ordered maps, integers
     * Long, other numbers Double. Throws {@link IllegalArgumentException} if it is not JSON.
     */
    public static Object parse(String text) {
        try {
            JsonReader r = new JsonReader(new StringReader(text));
            r.setStrictness(Strictness.STRICT);
            JsonElement e = com.google.gson.JsonParser.parseReader(r);
            if (r.peek() != JsonToken.END_DOCUMENT) throw new IllegalArgumentException("data after the value");
            return plain(e);
        } catch (IllegalArgumentException e) {
            throw e;
        } catch (Exception | StackOverflowError e) {
            throw new IllegalArgumentException("not valid JSON: " + e.getMessage(), e);
        }
    }

    /** As {@link #parse}, for a document that must be an object. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> parseObject(String text) {
        if (parse(text) instanceof Map<?, ?> m) return (Map<String, Object>) m;
        throw new IllegalArgumentException("not a JSON object");
    }

    private static Object plain(JsonElement e) {
        if (e == null || e.isJsonNull()) return null;
        if (e instanceof JsonObject o) {
            Map<String, Object> m = new LinkedHashMap<>();
            for (Map.Entry<String, JsonElement> x : o.entrySet()) m.put(x.getKey(), plain(x.getValue()));
            return m;
        }
        if (e instanceof JsonArray a) {
            List<Object> l = new ArrayList<>(a.size());
            for (JsonElement x : a) l.add(plain(x));
            return l;
        }
        JsonPrimitive p = (JsonPrimitive) e;
        if (p.isBoolean()) return p.getAsBoolean();
        if (p.isString()) return p.getAsString();
        String n = p.getAsString();
        if (n.contains(".") || n.contains("e") || n.contains("E")) return p.getAsDouble();
        try {
            return Long.parseLong(n);
        } catch (NumberFormatException x) {
            return p.getAsDouble();
        }
    }
}
