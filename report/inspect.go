package report

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Layer is one layer of a model as rq inspect shows it.
type Layer struct {
	Name       string   `json:"name"`
	Kind       string   `json:"kind"` // embedding, linear
	Precision  string   `json:"precision"`
	Shape      []int    `json:"shape"`
	DTypes     []string `json:"dtypes"`
	Activation string   `json:"activation,omitempty"`
	Params     int64    `json:"params"`
	Bytes      int64    `json:"bytes"`
	FP32Bytes  int64    `json:"fp32_bytes"`
}

// Inspect is rq inspect's output.
type Inspect struct {
	File        string         `json:"file"`
	Format      string         `json:"format"`
	Scheme      string         `json:"scheme"`
	Interaction string         `json:"interaction"`
	DenseInputs int            `json:"dense_inputs"`
	Tables      int            `json:"tables"`
	BottomMLP   []int          `json:"bottom_mlp"`
	TopMLP      []int          `json:"top_mlp"`
	Params      int64          `json:"params"`
	Bytes       int64          `json:"bytes"`
	FP32Bytes   int64          `json:"fp32_bytes"`
	Meta        map[string]any `json:"meta,omitempty"`
	Layers      []Layer        `json:"layers"`
}

func dims(d []int) string {
	s := make([]string, len(d))
	for i, v := range d {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, "-")
}

// InspectTable prints the network summary and a row per layer.
func InspectTable(w io.Writer, in *Inspect) error {
	fmt.Fprintf(w, "%s: %s, %s naming\n", in.File, in.Format, in.Scheme)
	fmt.Fprintf(w, "network: %d dense -> bottom MLP %s; %d embedding tables; interaction %s; top MLP %s\n",
		in.DenseInputs, dims(in.BottomMLP), in.Tables, in.Interaction, dims(in.TopMLP))
	fmt.Fprintf(w, "parameters: %d, %s (fp32: %s)\n", in.Params, Bytes(in.Bytes), Bytes(in.FP32Bytes))
	if len(in.Meta) > 0 {
		keys := make([]string, 0, len(in.Meta))
		for k := range in.Meta {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, 0, len(keys))
		for _, k := range keys {
			v := fmt.Sprint(in.Meta[k])
			if len(v) > 40 {
				v = v[:37] + "..."
			}
			parts = append(parts, k+"="+v)
		}
		fmt.Fprintf(w, "metadata: %s\n", strings.Join(parts, " "))
	}
	rows := make([][]string, 0, len(in.Layers))
	for _, l := range in.Layers {
		shape := make([]string, len(l.Shape))
		for i, d := range l.Shape {
			shape[i] = strconv.Itoa(d)
		}
		rows = append(rows, []string{l.Name, l.Kind, l.Precision, "[" + strings.Join(shape, " ") + "]", strings.Join(l.DTypes, ","), l.Activation,
			strconv.FormatInt(l.Params, 10), Bytes(l.Bytes), fmt.Sprintf("%.1f%%", 100*float64(l.Bytes)/float64(max(l.FP32Bytes, 1)))})
	}
	return Table(w, []string{"layer", "kind", "precision", "shape", "dtype", "activation", "params", "bytes", "of fp32"}, rows)
}
