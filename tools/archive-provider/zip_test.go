package main

import (
	"archive/zip"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"
)

func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func names(t *testing.T, path string) []string {
	t.Helper()
	r, err := zip.OpenReader(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []string
	for _, f := range r.File {
		out = append(out, f.Name)
	}
	sort.Strings(out)
	return out
}

func TestSameTreeGivesTheSameArchiveWhateverTheModTimes(t *testing.T) {
	dir := writeTree(t, map[string]string{"handler.py": "x = 1\n", "pkg/mod.py": "y = 2\n"})
	out := filepath.Join(t.TempDir(), "a.zip")
	first, err := writeZip(zipSpec{sourceDir: dir, outputPath: out})
	if err != nil {
		t.Fatal(err)
	}
	later := filepath.Join(dir, "handler.py")
	if err := os.Chtimes(later, time.Unix(1700000000, 0), time.Unix(1700000000, 0)); err != nil {
		t.Fatal(err)
	}
	second, err := writeZip(zipSpec{sourceDir: dir, outputPath: out})
	if err != nil {
		t.Fatal(err)
	}
	if first.b64sha256 != second.b64sha256 {
		t.Fatalf("archive changed with mod times: %s != %s", first.b64sha256, second.b64sha256)
	}
}

func TestExcludesTakeDoublestarGlobs(t *testing.T) {
	dir := writeTree(t, map[string]string{
		"handler.py": "x", "__pycache__/handler.pyc": "c", "pkg/__pycache__/m.pyc": "c", "pkg/m.py": "m",
	})
	out := filepath.Join(t.TempDir(), "a.zip")
	spec := zipSpec{sourceDir: dir, outputPath: out, excludes: []string{"**/__pycache__", "**/*.pyc"}}
	if _, err := writeZip(spec); err != nil {
		t.Fatal(err)
	}
	got := names(t, out)
	want := []string{"handler.py", "pkg/m.py"}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("entries %v, want %v", got, want)
	}
}

func TestExactlyOneSourceIsRequired(t *testing.T) {
	err := zipSpec{outputPath: "x.zip"}.validate()
	if err == nil {
		t.Fatal("a spec without a source was accepted")
	}
	err = zipSpec{outputPath: "x.zip", sourceDir: "a", sourceFile: "b"}.validate()
	if err == nil {
		t.Fatal("a spec with two sources was accepted")
	}
}
