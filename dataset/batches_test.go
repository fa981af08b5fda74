package dataset

import (
	"context"
	"errors"
	"io"
	"testing"

	"github.com/rqtools/rq/model"
)

type fakeSource struct {
	n   int
	err error
}

func (s *fakeSource) Next() (*model.Batch, error) {
	if s.n == 0 {
		if s.err != nil {
			return nil, s.err
		}
		return nil, io.EOF
	}
	s.n--
	return &model.Batch{N: s.n}, nil
}

func TestBatches(t *testing.T) {
	var seen []int
	err := Batches(context.Background(), &fakeSource{n: 3}, func(b *model.Batch) error { seen = append(seen, b.N); return nil })
	if err != nil || len(seen) != 3 || seen[0] != 2 || seen[2] != 0 {
		t.Fatalf("all batches: %v, %v", seen, err)
	}
	boom := errors.New("boom")
	if err := Batches(context.Background(), &fakeSource{n: 1, err: boom}, func(*model.Batch) error { return nil }); !errors.Is(err, boom) {
		t.Fatalf("source error: %v", err)
	}
	calls := 0
	if err := Batches(context.Background(), &fakeSource{n: 3}, func(*model.Batch) error { calls++; return boom }); !errors.Is(err, boom) || calls != 1 {
		t.Fatalf("fn error: %v after %d calls", err, calls)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	calls = 0
	if err := Batches(ctx, &fakeSource{n: 3}, func(*model.Batch) error { calls++; return nil }); !errors.Is(err, context.Canceled) || calls != 0 {
		t.Fatalf("cancelled: %v after %d calls", err, calls)
	}
}
