// Package testshared finds the reference data of ../shared (real models,
// click logs, golden outputs) for tests. CI has it beside the clone; a
// developer's machine may not. A test that needs a missing file fails under
// CI=true (a CI run that silently skipped its real-data cases would prove
// nothing) and is skipped elsewhere.
package testshared

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
)

// Dir is the shared folder: ../shared beside the repository's root.
func Dir() string {
	_, file, _, _ := runtime.Caller(0) // .../internal/testshared/testshared.go
	return filepath.Join(filepath.Dir(file), "..", "..", "..", "shared")
}

// Path returns the path of rel under the shared folder, failing the test
// under CI=true when it is missing and skipping it otherwise.
func Path(t testing.TB, rel string) string {
	t.Helper()
	p := filepath.Join(Dir(), rel)
	if _, err := os.Stat(p); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is missing under CI=true (CI has ../shared beside the clone): %v", p, err)
		}
		t.Skipf("%s missing", p)
	}
	return p
}
