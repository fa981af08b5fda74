package modelio

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/s3test"
	"github.com/rqtools/rq/internal/testshared"
	"github.com/rqtools/rq/storage"
)

// sameModel checks that two loads hold the same tensors, byte for byte,
// and the same network.
func sameModel(t *testing.T, local, remote *Model) {
	t.Helper()
	if local.Format != remote.Format || local.Scheme != remote.Scheme || local.Quantized != remote.Quantized {
		t.Fatalf("local %s/%s/%v, object %s/%s/%v", local.Format, local.Scheme, local.Quantized, remote.Format, remote.Scheme, remote.Quantized)
	}
	if len(local.Tensors) != len(remote.Tensors) {
		t.Fatalf("%d tensors locally, %d from the object", len(local.Tensors), len(remote.Tensors))
	}
	for i := range local.Tensors {
		a, b := local.Tensors[i], remote.Tensors[i]
		if a.Name != b.Name || a.DType != b.DType || !bytes.Equal(a.Data, b.Data) {
			t.Fatalf("tensor %d: local %s %s (%d bytes), object %s %s (%d bytes), same bytes %v",
				i, a.Name, a.DType, len(a.Data), b.Name, b.DType, len(b.Data), bytes.Equal(a.Data, b.Data))
		}
	}
	if len(local.Net.Bottom) != len(remote.Net.Bottom) || len(local.Net.Top) != len(remote.Net.Top) || len(local.Net.Tables) != len(remote.Net.Tables) || local.Net.NumDense != remote.Net.NumDense {
		t.Fatalf("networks differ: %+v, %+v", local.Net, remote.Net)
	}
}

// TestLoadObject loads the shared models (safetensors, a TorchRec
// safetensors and a .pt checkpoint) from the real S3 server and gets the
// local files' tensors byte for byte, with ranged reads only: every
// safetensors request is for bytes some tensor or the header holds, and
// the bytes fetched are at most the file's (no whole download beside
// them).
func TestLoadObject(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	for _, rel := range []string{"criteo-18k/model.safetensors", "criteo-torchrec/dlrm.safetensors", "criteo-18k/dlrm-criteo.pt"} {
		t.Run(filepath.Base(rel), func(t *testing.T) {
			p := testshared.Path(t, rel)
			u := s.PutFile(p, "models/"+filepath.Base(rel))
			local, err := Load(p)
			if err != nil {
				t.Fatal(err)
			}
			defer local.Close()
			remote, err := LoadContext(context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			defer remote.Close()
			sameModel(t, local, remote)
			if remote.Path != u {
				t.Errorf("Path %q, want the URL %q", remote.Path, u)
			}
			sum, err := FileSHA256(p)
			if err != nil {
				t.Fatal(err)
			}
			rsum, err := FileSHA256(u)
			if err != nil || rsum != sum {
				t.Errorf("FileSHA256 of the object %s (%v), of the file %s", rsum, err, sum)
			}
			f, err := Sniff(u)
			if err != nil || f != local.Format {
				t.Errorf("Sniff(URL) = %s, %v; want %s", f, err, local.Format)
			}
		})
	}
}

// TestSafetensorsObjectRanged shows that a safetensors object is read by
// ranges: the header, then the tensors, never the bytes between them
// that no tensor covers.
func TestSafetensorsObjectRanged(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	// Two 3 MiB tensors with 5 MiB between them that no tensor covers.
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(i * 7)
	}
	hole := 5 << 20
	S := len(big)
	hdr := fmt.Sprintf(`{"a":{"dtype":"U8","shape":[%d],"data_offsets":[0,%d]},"b":{"dtype":"U8","shape":[%d],"data_offsets":[%d,%d]}}`, S, S, S, S+hole, 2*S+hole)
	for len(hdr)%8 != 0 {
		hdr += " "
	}
	data := binary.LittleEndian.AppendUint64(nil, uint64(len(hdr)))
	data = append(data, hdr...)
	data = append(data, big...)
	data = append(data, make([]byte, hole)...)
	data = append(data, big...)
	u := s.URL("ranged.safetensors")
	if err := storage.WriteFile(context.Background(), u, data); err != nil {
		t.Fatal(err)
	}
	r, err := storage.Open(context.Background(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := openSafetensorsObject(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if f.Uncovered != int64(hole) {
		t.Fatalf("uncovered %d bytes, want the %d-byte hole", f.Uncovered, hole)
	}
	for _, name := range []string{"a", "b"} {
		tt, _ := f.Lookup(name)
		if !bytes.Equal(tt.Data, big) {
			t.Errorf("tensor %s differs from what was written", name)
		}
	}
	st := r.Stats()
	// The header's first read goes through the Reader's cache, which
	// fetches the 1 MiB block holding it.
	if want := int64(len(data)-hole) + storage.BlockSize; st.Bytes > want {
		t.Errorf("fetched %d bytes in %d requests; the header's block and the tensors are %d (the %d-byte hole must not be read)", st.Bytes, st.Requests, want, hole)
	}
}

// TestObjectErrors: a missing object is fs.ErrNotExist naming the URL; an
// object that is not a model gets the format error a file gets.
func TestObjectErrors(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	u := s.URL("nothing-here.safetensors")
	_, err := Load(u)
	if !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), "nothing-here.safetensors") {
		t.Errorf("missing object: %v", err)
	}
	junk := s.URL("junk.safetensors")
	if err := storage.WriteFile(context.Background(), junk, []byte("hello, not a model")); err != nil {
		t.Fatal(err)
	}
	_, err = Load(junk)
	var fe *FormatError
	if !errors.As(err, &fe) {
		t.Errorf("junk object: %v, want a FormatError", err)
	}
	// A header claiming more than the object holds is refused from its
	// length, as for a file.
	lie := make([]byte, 16)
	lie[0], lie[1], lie[8] = 0xff, 0xff, '{'
	if err := storage.WriteFile(context.Background(), s.URL("lie.safetensors"), lie); err != nil {
		t.Fatal(err)
	}
	_, err = Load(s.URL("lie.safetensors"))
	if !errors.As(err, &fe) || !strings.Contains(err.Error(), "runs past the end") {
		t.Errorf("lying header: %v", err)
	}
}

// TestWriteSafetensorsObject writes a model to the server and reads back
// the bytes a local write gives.
func TestWriteSafetensorsObject(t *testing.T) {
	s := s3test.Start(t)
	s.SetEnv(t)
	specs := []TensorSpec{{Name: "w", DType: F32, Shape: []int{2, 3}, Write: func(w io.Writer) error {
		_, err := w.Write(bytes.Repeat([]byte{1, 2, 3, 4}, 6))
		return err
	}}}
	local := filepath.Join(t.TempDir(), "w.safetensors")
	if err := WriteSafetensors(local, specs, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	u := s.URL("out/w.safetensors")
	if err := WriteSafetensors(u, specs, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	want, _ := os.ReadFile(local)
	got, err := storage.ReadFile(context.Background(), u)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("object holds %d bytes (%v), the local write %d", len(got), err, len(want))
	}
	// A failing tensor leaves the object as it was.
	bad := []TensorSpec{{Name: "w", DType: F32, Shape: []int{2, 3}, Write: func(w io.Writer) error {
		w.Write([]byte{1, 2, 3, 4})
		return errors.New("disk on fire")
	}}}
	if err := WriteSafetensors(u, bad, nil); err == nil || !strings.Contains(err.Error(), "disk on fire") {
		t.Fatalf("failing write: %v", err)
	}
	got, err = storage.ReadFile(context.Background(), u)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("after a failed write the object holds %d bytes (%v), want the older %d", len(got), err, len(want))
	}
}
