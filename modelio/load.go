package modelio

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"github.com/rqtools/rq/internal/filekind"
	"io"
	"os"
	"strings"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/storage"
)

// Format names a model file format.
type Format string

const (
	FormatSafetensors Format = "safetensors"
	FormatTorch       Format = "pytorch"
)

// Model is a loaded model file: the network and where it came from. Close
// releases the file mapping the network's weights may alias.
type Model struct {
	Path    string
	Format  Format
	Scheme  string // naming scheme the network was inferred with
	Net     *model.Network
	Tensors []Tensor       // the file's tensors, in file order
	Meta    map[string]any // safetensors __metadata__ or a checkpoint's other entries
	// Quantized is set for rq quantized files (docs/format.md).
	Quantized bool
	close     func() error
	// byLayer is each layer's tensors as the naming scheme assigned
	// them (checkpoints; nil for quantized files, whose tensors carry
	// their layer's name).
	byLayer map[string][]*Tensor
}

// LayerTensors returns the file's tensors that hold the named layer (its
// weight and bias, a table's weight; a quantized layer's weights, scales,
// zero points and bias), in file order for quantized files and weight
// first for checkpoints: what the layer costs in the file.
func (m *Model) LayerTensors(layer string) []*Tensor {
	if m.byLayer != nil {
		return m.byLayer[layer]
	}
	var out []*Tensor
	for i := range m.Tensors {
		t := &m.Tensors[i]
		if t.Name == layer || strings.HasPrefix(t.Name, layer+".") && !strings.Contains(t.Name[len(layer)+1:], ".") {
			out = append(out, t)
		}
	}
	return out
}

// Close releases the model's file. The network must not be used afterwards.
func (m *Model) Close() error {
	if m.close == nil {
		return nil
	}
	c := m.close
	m.close = nil
	return c()
}

// Sniff tells a model file's format from its first bytes: a zip (PyTorch's
// torch.save) or safetensors (an 8-byte header length then '{').
//
// path may be an object-storage URL: its first bytes are one ranged read.
func Sniff(path string) (Format, error) {
	if local, isLocal := storage.LocalPath(path); !isLocal {
		r, format, err := openObject(context.Background(), path)
		if err != nil {
			return "", err
		}
		r.Close()
		return format, nil
	} else {
		path = local
	}
	// Opening a FIFO blocks until something writes to it: look first.
	st, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() {
		return "", &FormatError{File: path, Msg: fmt.Sprintf("not a regular file (%s); rq reads model files it can map", filekind.Of(st.Mode()))}
	}
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var head [9]byte
	n, err := io.ReadFull(f, head[:])
	if err != nil && err != io.ErrUnexpectedEOF && err != io.EOF {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return sniffHead(path, head[:n])
}

// sniffHead tells the format from a file's first (up to 9) bytes.
func sniffHead(path string, head []byte) (Format, error) {
	n := len(head)
	switch {
	case n >= 4 && bytes.Equal(head[:4], []byte("PK\x03\x04")):
		return FormatTorch, nil
	case n == 9 && head[8] == '{':
		// Before the pickle test: a safetensors header of 384 bytes
		// starts 0x80 0x01, like a protocol-1 pickle.
		return FormatSafetensors, nil
	case n >= 2 && head[0] == 0x80 && head[1] <= 5:
		return "", &UnsupportedError{File: path, What: "legacy (pre-1.6) PyTorch checkpoint; re-save it with torch.save(obj, path) from PyTorch >= 1.6"}
	}
	return "", &FormatError{File: path, Msg: "neither a safetensors file nor a PyTorch checkpoint (zip)"}
}

// Load reads a model file (safetensors or PyTorch checkpoint, told apart by
// content, not by name) and infers its network.
func Load(path string) (*Model, error) {
	return LoadContext(context.Background(), path)
}

// LoadContext is Load, cancellable: the parsers check ctx as they go (every
// few thousand pickle opcodes, header entries, or MiB checked or inflated),
// and when ctx is done the load stops with ctx's error wrapped with the
// file's name (errors.Is(err, context.Canceled) holds). Files past the
// budgets in budget.go give a *LimitError in bounded time and memory.
func LoadContext(ctx context.Context, path string) (*Model, error) {
	return LoadWith(ctx, path, LoadOptions{})
}

// LoadWith is LoadContext with the user's choices about how the file is
// read (o.Interaction; a quantized file records its own).
func LoadWith(ctx context.Context, path string, o LoadOptions) (*Model, error) {
	if err := ctxErr(ctx, path); err != nil {
		return nil, err
	}
	local, isLocal := storage.LocalPath(path)
	if !isLocal {
		return loadObject(ctx, path, o)
	}
	path = local // a file:// URL's file
	format, err := Sniff(path)
	if err != nil {
		return nil, err
	}
	var sf *SafetensorsFile
	var c *Checkpoint
	switch format {
	case FormatSafetensors:
		sf, err = OpenSafetensorsContext(ctx, path)
	case FormatTorch:
		c, err = ReadTorchContext(ctx, path)
	}
	if err != nil {
		return nil, err
	}
	return build(path, format, sf, c, o)
}

// build infers the network of a file opened as safetensors (sf) or as a
// checkpoint (c), whether it came from a local file or an object.
func build(path string, format Format, sf *SafetensorsFile, c *Checkpoint, o LoadOptions) (*Model, error) {
	m := &Model{Path: path, Format: format}
	switch format {
	case FormatSafetensors:
		f := sf
		m.Tensors, m.close = f.Tensors, f.Close
		m.Meta = map[string]any{}
		for k, v := range f.Metadata {
			m.Meta[k] = v
		}
		if IsQuantized(f.Metadata) {
			net, scheme, err := buildQuantizedScheme(path, f)
			if err != nil {
				m.Close()
				return nil, err
			}
			boundResidentTables(net)
			m.Net, m.Scheme, m.Quantized = net, scheme, true
			return m, nil
		}
	case FormatTorch:
		m.Tensors, m.Meta, m.close = c.Tensors, c.Meta, c.Close
	}
	m.byLayer = map[string][]*Tensor{}
	net, scheme, err := buildNetwork(path, m.Tensors, true, o.Interaction, func(layer string, t *Tensor) {
		m.byLayer[layer] = append(m.byLayer[layer], t)
	})
	if err != nil {
		m.Close()
		return nil, err
	}
	boundResidentTables(net)
	m.Net, m.Scheme = net, scheme
	return m, nil
}

// FileSHA256 is the hex sha256 of a file's bytes: the identity of a model
// that ranges, plans and quantized files record.
//
// path may be an object-storage URL: the object is read in large ranged
// requests (it is not kept).
func FileSHA256(path string) (string, error) {
	local, isLocal := storage.LocalPath(path)
	if !isLocal {
		return objectSHA256(path)
	}
	f, err := os.Open(local)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
