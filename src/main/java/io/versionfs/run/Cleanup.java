package io.versionfs.run;

import io.versionfs.text.Log;

import java.util.ArrayDeque;
import java.util.Deque;

/**
 * The undo of a run's set-up, as a stack: each step that changed something pushes how to put it
 * back, and the end of the run (normal, failed or refused) pops them in reverse order. A run
 * refused half-way undoes exactly what it did and nothing that belongs to anyone else. One step
 * failing never stops the ones below it.
 */
final class Cleanup {
    interface Step {
        void run() throws Exception;
    }

    private record Entry(String what, Step step) {}

    private final Deque<Entry> steps = new ArrayDeque<>();

    void push(String what, Step step) {
        steps.push(new Entry(what, step));
    }

    void runAll() {
        while (!steps.isEmpty()) {
            Entry e = steps.pop();
            try {
                e.step().run();
            } catch (Exception | Error ex) {
                Log.warn("while finishing (" + e.what() + "): " + ex.getMessage());
            }
        }
    }
}
