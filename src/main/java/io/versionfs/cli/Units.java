package io.versionfs.cli;

import io.versionfs.errors.ExitCodes;
import io.versionfs.errors.UserError;

import java.time.Duration;
import java.util.Locale;

/** Sizes ({@code 500M}, {@code 10G}: binary units) and durations ({@code 30s}, {@code 5m}, {@code 2h}) from options. */
final class Units {
    private Units() {}

    static long size(String option, String text) {
        String t = text.trim().toUpperCase(Locale.ROOT).replace("IB", "").replace("B", "");
        long mult = 1;
        if (!t.isEmpty()) {
            switch (t.charAt(t.length() - 1)) {
                case 'K' -> mult = 1L << 10;
                case 'M' -> mult = 1L << 20;
                case 'G' -> mult = 1L << 30;
                case 'T' -> mult = 1L << 40;
                default -> mult = 1;
            }
            if (mult > 1) t = t.substring(0, t.length() - 1);
        }
        try {
            double v = Double.parseDouble(t);
            if (v < 0 || Double.isNaN(v) || v * mult > Long.MAX_VALUE / 2) throw new NumberFormatException();
            return (long) (v * mult);
        } catch (NumberFormatException e) {
            throw new UserError(ExitCodes.USAGE, option + " takes a size such as 500M or 10G, not '" + text + "'");
        }
    }

    static Duration duration(String option, String text) {
        String t = text.trim().toLowerCase(Locale.ROOT);
        long mult = 1;
        if (!t.isEmpty() && Character.isLetter(t.charAt(t.length() - 1))) {
            switch (t.charAt(t.length() - 1)) {
                case 's' -> mult = 1;
                case 'm' -> mult = 60;
                case 'h' -> mult = 3600;
                case 'd' -> mult = 86400;
                default -> throw new UserError(ExitCodes.USAGE, option + " takes a duration such as 30s, 5m or 2h, not '" + text + "'");
            }
            t = t.substring(0, t.length() - 1);
        }
        try {
            double v = Double.parseDouble(t);
            if (v < 0 || Double.isNaN(v) || v > 1e9) throw new NumberFormatException();
            return Duration.ofMillis((long) (v * mult * 1000));
        } catch (NumberFormatException e) {
            throw new UserError(ExitCodes.USAGE, option + " takes a duration such as 30s, 5m or 2h, not '" + text + "'");
        }
    }
}
