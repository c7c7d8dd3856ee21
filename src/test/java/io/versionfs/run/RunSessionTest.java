package io.versionfs.run;

import org.junit.jupiter.api.Test;

import java.util.List;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.locks.Lock;
import java.util.concurrent.locks.ReentrantLock;

import static org.junit.jupiter.api.Assertions.assertEquals;

/** The end of a run never waits for ever for a hook that is starting (RunSession.lockAll). */
class RunSessionTest {
    @Test
    void aLockHeldElsewhereIsGivenUpAtTheDeadlineAndTheOthersAreTaken() throws Exception {
        Lock stuck = new ReentrantLock(), free = new ReentrantLock();
        CountDownLatch taken = new CountDownLatch(1), done = new CountDownLatch(1);
        Thread holder = new Thread(() -> {
            stuck.lock(); // a hook start that never returns
            taken.countDown();
            try {
                done.await();
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            } finally {
                stuck.unlock();
            }
        });
        holder.start();
        taken.await();
        try {
            List<Lock> held = RunSession.lockAll(List.of(stuck, free), 200);
            assertEquals(List.of(free), held, "the free lock is taken, the stuck one given up");
            held.forEach(Lock::unlock);
        } finally {
            done.countDown();
            holder.join();
        }
    }

    @Test
    void freeLocksAreAllTaken() {
        Lock a = new ReentrantLock(), b = new ReentrantLock();
        List<Lock> held = RunSession.lockAll(List.of(a, b), 200);
        assertEquals(List.of(a, b), held);
        held.forEach(Lock::unlock);
    }
}
