package testshared

import (
	"strings"
	"testing"
)

// recorder stands in for a test: it records Fatalf and Skipf, which stop
// the calling function as the real ones do.
type recorder struct {
	testing.TB
	fatal, skip string
}

type stop struct{}

func (r *recorder) Helper() {}
func (r *recorder) Fatalf(format string, args ...any) {
	r.fatal = format
	panic(stop{})
}
func (r *recorder) Skipf(format string, args ...any) {
	r.skip = format
	panic(stop{})
}

func call(r *recorder, rel string) (p string) {
	defer func() {
		if v := recover(); v != nil && v != (stop{}) {
			panic(v)
		}
	}()
	return Path(r, rel)
}

func TestPath(t *testing.T) {
	t.Setenv("CI", "true")
	r := &recorder{TB: t}
	call(r, "no/such/file")
	if r.fatal == "" || r.skip != "" || !strings.Contains(r.fatal, "CI=true") {
		t.Errorf("under CI=true a missing file: fatal %q, skip %q", r.fatal, r.skip)
	}
	t.Setenv("CI", "")
	r = &recorder{TB: t}
	call(r, "no/such/file")
	if r.fatal != "" || r.skip == "" {
		t.Errorf("without CI a missing file: fatal %q, skip %q", r.fatal, r.skip)
	}
}
