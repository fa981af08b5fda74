package cmd

import (
	"context"
	"sort"

	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type inspectOptions struct {
	*globalOptions
	models modelFlags // the flags of loading a model (modelflags.go)
	model  string
	json   bool
}

func newInspectCmd(g *globalOptions, runF func(context.Context, *inspectOptions) error) *cobra.Command {
	opts := &inspectOptions{globalOptions: g}
	if runF == nil {
		runF = runInspect
	}
	c := &cobra.Command{
		Use:   "inspect MODEL [--json]",
		Short: "Show a model's layers, shapes, dtypes, parameters, bytes and inferred network",
		Long: `Show what rq reads from a model file: the naming scheme and inferred network
(dense inputs, bottom MLP, embedding tables, interaction op, top MLP) and, per layer,
its shape, dtypes, activation, parameter count and bytes.`,
		Example: `  rq inspect dlrm-criteo.pt
  rq inspect model.safetensors --json`,
		Args: cobra.ExactArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			opts.model = args[0]
			if err := opts.models.check(""); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	c.Flags().BoolVar(&opts.json, "json", false, "print one JSON object instead of a table")
	opts.models.register(g, c.Flags(), reportNonFinite)
	return c
}

func runInspect(ctx context.Context, opts *inspectOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	m, err := opts.models.load(ctx, opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	out := inspectView(m)
	if opts.json {
		return report.JSON(opts.stdout, out)
	}
	return report.InspectTable(opts.stdout, out)
}

// inspectView describes a loaded model layer by layer, in network order.
func inspectView(m *modelio.Model) *report.Inspect {
	n := m.Net
	layer := func(name, kind, precision string, shape []int, act string, params int64) report.Layer {
		l := report.Layer{Name: name, Kind: kind, Precision: precision, Shape: shape, Activation: act, Params: params, FP32Bytes: 4 * params}
		seen := map[string]bool{}
		for _, t := range m.LayerTensors(name) {
			l.Bytes += int64(len(t.Data))
			if !seen[string(t.DType)] {
				seen[string(t.DType)] = true
				l.DTypes = append(l.DTypes, string(t.DType))
			}
		}
		sort.Strings(l.DTypes)
		return l
	}
	format := string(m.Format)
	if m.Quantized {
		format += " (rq quantized)"
	}
	out := &report.Inspect{File: m.Path, Format: format, Scheme: m.Scheme, Interaction: n.Interaction.String(),
		DenseInputs: n.NumDense, Tables: len(n.Tables), Meta: m.Meta}
	// The summary's MLP widths: the Linear layers before the first table
	// in network order are the bottom MLP (from the dense inputs), those
	// after the tables, less the interaction's own, the top MLP (from the
	// interaction's output).
	var top []*model.Linear
	out.BottomMLP = append(out.BottomMLP, n.NumDense)
	for l := range n.Layers() {
		switch l.Part {
		case model.PartTable:
			out.Layers = append(out.Layers, layer(l.Name(), "embedding", l.Label(), []int{int(l.Table.Rows), l.Table.Dim}, "", l.Params()))
			continue
		case model.PartBottom:
			out.BottomMLP = append(out.BottomMLP, l.FC.Out)
		case model.PartTop:
			top = append(top, l.FC)
		}
		out.Layers = append(out.Layers, layer(l.Name(), "linear", l.Label(), []int{l.FC.Out, l.FC.In}, l.FC.Act.String(), l.Params()))
	}
	if len(top) > 0 {
		out.TopMLP = append(out.TopMLP, top[0].In)
	}
	for _, l := range top {
		out.TopMLP = append(out.TopMLP, l.Out)
	}
	for _, l := range out.Layers {
		out.Params += l.Params
		out.Bytes += l.Bytes
		out.FP32Bytes += l.FP32Bytes
	}
	return out
}
