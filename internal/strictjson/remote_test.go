package strictjson

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/s3test"
	"github.com/rqtools/rq/storage"
)

// TestReadObject reads documents from the real S3 server as from files:
// strictly, within the cap (an object over it is refused by its size,
// naming the URL), and a missing object is fs.ErrNotExist.
func TestReadObject(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	ctx := context.Background()
	u := s.URL("docs/plan.json")
	if err := storage.WriteFile(ctx, u, []byte(good)); err != nil {
		t.Fatal(err)
	}
	var d testDoc
	if err := ReadFile(u, &d, opts); err != nil {
		t.Fatal(err)
	}
	if d.Layers["emb_l.0"].Precision != "int4" || d.Plain != 4 {
		t.Fatalf("decoded %+v", d)
	}
	dup := s.URL("docs/dup.json")
	if err := storage.WriteFile(ctx, dup, []byte(`{"version": 1, "version": 1}`)); err != nil {
		t.Fatal(err)
	}
	var se *Error
	if err := ReadFile(dup, &d, opts); !errors.As(err, &se) || se.File != dup {
		t.Fatalf("a key twice: %v", err)
	}
	small := Options{Kind: "plan", Versions: []int{1}, MaxBytes: 100}
	if _, err := ReadBytes(u, small); err == nil || !strings.Contains(err.Error(), "more than 100 bytes") || !strings.Contains(err.Error(), "docs/plan.json") {
		t.Fatalf("over the cap: %v", err)
	}
	if _, err := ReadBytes(s.URL("docs/none.json"), opts); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}
