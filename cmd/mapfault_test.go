//go:build linux

package cmd

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/dataset"
	"github.com/rqtools/rq/internal/mapfault"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
)

// TestTruncatedModelFault: a model file truncated while rq has it mapped
// gives an error naming the file, from the forward pass's worker goroutines
// too, instead of "unexpected fault address" and a goroutine dump.
func TestTruncatedModelFault(t *testing.T) {
	for _, threads := range []int{1, 2} {
		truncatedModelFault(t, threads)
	}
}

func truncatedModelFault(t *testing.T, threads int) {
	path := copyFile(t, filepath.Join("testdata", "demo", "model.safetensors"), t.TempDir())
	m, err := modelio.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	rd, err := dataset.Open(filepath.Join("testdata", "demo", "criteo-test.npz"), dataset.Options{BatchSize: 512, NumDense: m.Net.NumDense, TableRows: m.Net.TableRows()})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	b, err := rd.Next()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, int64(os.Getpagesize())); err != nil {
		t.Fatal(err)
	}
	err = func() (err error) {
		defer mapfault.Guard()()
		defer mapfault.Catch(&err)
		_, err = model.NewRunner(m.Net, threads).Forward(b)
		return err
	}()
	var fe *mapfault.FaultError
	if !errors.As(err, &fe) || fe.File != path || !strings.Contains(err.Error(), "truncated") {
		t.Errorf("%d threads: got %v, want a FaultError naming %s", threads, err, path)
	}
}
