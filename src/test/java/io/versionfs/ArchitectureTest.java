package io.versionfs;

import com.tngtech.archunit.core.domain.JavaClasses;
import com.tngtech.archunit.core.importer.ClassFileImporter;
import com.tngtech.archunit.core.importer.ImportOption;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

import static com.tngtech.archunit.library.Architectures.layeredArchitecture;
import static com.tngtech.archunit.library.dependencies.SlicesRuleDefinition.slices;

/**
 * The package graph of README "How it is built", pinned: each package imports only those below
 * it. cli -> run -> {trap, fs, report} -> capture -> {sys, errors, text}. A new import against
 * the arrows fails here, with the offending class and line.
 */
class ArchitectureTest {
    private static JavaClasses classes;

    @BeforeAll
    static void load() {
        classes = new ClassFileImporter().withImportOption(ImportOption.Predefined.DO_NOT_INCLUDE_TESTS)
                .importPackages("io.versionfs");
    }

    @Test
    void eachPackageImportsOnlyThoseBelowIt() {
        layeredArchitecture().consideringOnlyDependenciesInLayers()
                .layer("cli").definedBy("io.versionfs.cli..")
                .layer("run").definedBy("io.versionfs.run..")
                .layer("trap").definedBy("io.versionfs.trap..")
                .layer("fs").definedBy("io.versionfs.fs..")
                .layer("report").definedBy("io.versionfs.report..")
                .layer("capture").definedBy("io.versionfs.capture..")
                .layer("sys").definedBy("io.versionfs.sys..")
                .layer("errors").definedBy("io.versionfs.errors..")
                .layer("text").definedBy("io.versionfs.text..")
                .whereLayer("cli").mayNotBeAccessedByAnyLayer()
                .whereLayer("run").mayOnlyBeAccessedByLayers("cli")
                .whereLayer("trap").mayOnlyBeAccessedByLayers("run")
                .whereLayer("fs").mayOnlyBeAccessedByLayers("run", "cli")
                .whereLayer("report").mayOnlyBeAccessedByLayers("run", "cli")
                .whereLayer("capture").mayOnlyBeAccessedByLayers("fs", "report", "run", "cli")
                .whereLayer("sys").mayOnlyBeAccessedByLayers("capture", "fs", "trap", "report", "run", "cli")
                .whereLayer("errors").mayOnlyBeAccessedByLayers("capture", "fs", "trap", "report", "run", "cli", "sys")
                .whereLayer("text").mayOnlyBeAccessedByLayers("capture", "fs", "trap", "report", "run", "cli", "sys")
                .check(classes);
    }

    @Test
    void noCyclesBetweenPackages() {
        slices().matching("io.versionfs.(*)..").should().beFreeOfCycles().check(classes);
    }
}
