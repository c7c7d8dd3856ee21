package io.versionfs.text;

import java.util.Locale;

/** Sizes as people read them (binary units), one format for every output of versionfs. */
public final class Bytes {
    private Bytes() {}

    /** 512 B, 1.5 KiB, 64.0 MiB, 2.25 GiB, 3.10 TiB. Always a dot as the decimal mark, whatever the locale. */
    public static String of(long n) {
        if (n < 1024) return n + " B";
        if (n < 1L << 20) return String.format(Locale.ROOT, "%.1f KiB", n / 1024.0);
        if (n < 1L << 30) return String.format(Locale.ROOT, "%.1f MiB", n / (double) (1L << 20));
        if (n < 1L << 40) return String.format(Locale.ROOT, "%.2f GiB", n / (double) (1L << 30));
        if (n < 1L << 50) return String.format(Locale.ROOT, "%.2f TiB", n / (double) (1L << 40));
        return String.format(Locale.ROOT, "%.2f PiB", n / (double) (1L << 50));
    }
}
