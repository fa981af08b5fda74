package cmd

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/rqtools/rq/calibrate"
	"github.com/rqtools/rq/internal/filekind"
	"github.com/rqtools/rq/kernels"
	"github.com/rqtools/rq/model"
	"github.com/rqtools/rq/modelio"
	"github.com/rqtools/rq/precision"
	"github.com/rqtools/rq/quantize"
	"github.com/rqtools/rq/report"
	"github.com/spf13/cobra"
)

type quantizeOptions struct {
	*globalOptions
	models modelFlags // the flags of loading a model (modelflags.go)
	model  string
	plan   string
	preset string
	ranges string
	output string
	json   bool
}

func newQuantizeCmd(g *globalOptions, runF func(context.Context, *quantizeOptions) error) *cobra.Command {
	opts := &quantizeOptions{globalOptions: g}
	if runF == nil {
		runF = runQuantize
	}
	var presets []string
	for _, p := range quantize.PresetNames() {
		presets = append(presets, fmt.Sprintf("  %-21s %s", p, quantize.Presets[p]))
	}
	c := &cobra.Command{
		Use:   "quantize --model M (--plan plan.json | --preset NAME) [--ranges ranges.json] -o OUT.safetensors",
		Short: "Quantize an fp32 model by a plan or preset into a low-precision safetensors file",
		Long: `Quantize an fp32 model layer by layer as a plan says (or a preset), and write the result as a
safetensors file any safetensors tool can read (docs/format.md): int8 weights with their scales,
fp16/bf16 weights, 8/4/2-bit row-wise tables in PyTorch's fused layouts, and the plan and the
source model's sha256 in __metadata__. Tables are quantized while they are written, so a model
larger than memory quantizes in bounded memory. The same inputs give the same bytes.

Static int8 activations and mixed tables (hot rows at one precision, the rest at another) need
--ranges from rq calibrate on the same model.

Presets:
` + strings.Join(presets, "\n"),
		Example: `  rq quantize --model dlrm.pt --preset int8-dynamic -o dlrm-int8.safetensors
  rq calibrate --model dlrm.pt --data train.npz -o ranges.json
  rq quantize --model dlrm.pt --preset int8-int4 --ranges ranges.json -o dlrm-int8-int4.safetensors`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			switch {
			case opts.model == "":
				return usageErrorf("--model is required")
			case opts.output == "":
				return usageErrorf("-o/--output is required")
			case (opts.plan == "") == (opts.preset == ""):
				return usageErrorf("give exactly one of --plan and --preset")
			}
			if err := opts.models.check(""); err != nil {
				return err
			}
			return runF(c.Context(), opts)
		},
	}
	fs := c.Flags()
	fs.StringVar(&opts.model, "model", "", "fp32 model file (.pt or .safetensors)")
	fs.StringVar(&opts.plan, "plan", "", "plan JSON (per-layer precisions; rq search writes one)")
	fs.StringVar(&opts.preset, "preset", "", "a built-in plan: "+strings.Join(quantize.PresetNames(), ", "))
	fs.StringVar(&opts.ranges, "ranges", "", "calibrated ranges (rq calibrate) for static int8 activations and mixed tables' hot rows")
	fs.StringVarP(&opts.output, "output", "o", "", "output file (.safetensors)")
	fs.BoolVar(&opts.json, "json", false, "print the per-layer summary as JSON")
	opts.models.register(g, fs, allowableNonFinite)
	return c
}

// loadPlan reads --plan or builds --preset for a network.
func loadPlan(planPath, preset string, net *model.Network) (*quantize.Plan, error) {
	if preset != "" {
		p, err := quantize.Preset(preset, net)
		if err != nil {
			return nil, usageErrorf("--preset: %v", err)
		}
		return p, nil
	}
	p, err := quantize.ReadPlan(planPath)
	if err != nil {
		return nil, err
	}
	if err := p.Validate(net); err != nil {
		return nil, fmt.Errorf("%s: %w", planPath, err)
	}
	return p, nil
}

// loadRanges reads ranges.json and checks it belongs to the model.
func loadRanges(path, modelSHA, modelPath string) (*calibrate.Ranges, error) {
	r, err := calibrate.Read(path)
	if err != nil {
		return nil, err
	}
	if err := r.Check(modelSHA); err != nil {
		return nil, fmt.Errorf("%s does not belong to %s: %w", path, modelPath, err)
	}
	return r, nil
}

func runQuantize(ctx context.Context, opts *quantizeOptions) error {
	if err := opts.paths().check(); err != nil {
		return err
	}
	m, err := opts.models.load(ctx, opts.model)
	if err != nil {
		return err
	}
	defer m.Close()
	if m.Quantized {
		return fmt.Errorf("%s is already quantized; quantize the fp32 model it came from", opts.model)
	}
	plan, err := loadPlan(opts.plan, opts.preset, m.Net)
	if err != nil {
		return err
	}
	sha, err := modelio.FileSHA256(opts.model)
	if err != nil {
		return err
	}
	var ranges quantize.RangeSource
	if opts.ranges != "" {
		r, err := loadRanges(opts.ranges, sha, opts.model)
		if err != nil {
			return err
		}
		ranges = r
	} else if plan.NeedsRanges() {
		return usageErrorf("the plan quantizes activations statically: give --ranges from rq calibrate")
	}
	qnet, err := quantize.ApplyFC(m.Net, plan, ranges)
	if err != nil {
		return err
	}
	tables := map[string]modelio.TableEncoding{}
	for _, t := range m.Net.Tables {
		lp := plan.Layer(t.Name)
		if lp.Precision == precision.Mixed {
			enc, err := opts.models.mixedEncoding(opts.model, t, lp, ranges)
			if err != nil {
				return err
			}
			tables[t.Name] = enc
			continue
		}
		if mf, ok := kernels.MXFormatOf(lp.Precision); ok {
			// MX tables: codes and E8M0 scales quantized while written. The
			// check is the non-finite one (no fp16 range to hold); under
			// --allow-nonfinite a NaN still stops the write, naming the
			// row: MX cannot encode it.
			tables[t.Name] = modelio.TableEncoding{MX: mf, Check: opts.models.tableRowCheck(opts.model, t, 0)}
			continue
		}
		f, err := quantize.TableFormat(lp.Precision)
		if err != nil {
			return err
		}
		greedy := lp.Greedy
		tables[t.Name] = modelio.TableEncoding{Format: f, Check: opts.models.tableRowCheck(opts.model, t, f), Encode: func(w []float32, rows, dim int, dst []byte) {
			quantize.QuantizeTableRows(f, greedy, w, rows, dim, dst)
		}}
	}
	if err := modelio.WriteQuantizedContext(ctx, opts.output, qnet, tables, modelio.QuantInfo{SourceSHA256: sha, Plan: plan.Encode()}); err != nil {
		return unwrapTableRow(err)
	}
	if fi, err := os.Stat(opts.output); err == nil && !fi.Mode().IsRegular() {
		// Written through to a device or a pipe (-o /dev/null): there is
		// no file to read back.
		fmt.Fprintf(opts.stdout, "quantized model written to %s (%s: not read back)\n", opts.output, filekind.Of(fi.Mode()))
		return nil
	}
	out, err := modelio.Load(opts.output)
	if err != nil {
		return fmt.Errorf("reading back %s: %w", opts.output, err)
	}
	defer out.Close()
	view := inspectView(out)
	if opts.json {
		return report.JSON(opts.stdout, view)
	}
	fmt.Fprintf(opts.stdout, "wrote %s: %s, %.1f%% of fp32 (%s)\n", opts.output, report.Bytes(view.Bytes), 100*float64(view.Bytes)/float64(view.FP32Bytes), report.Bytes(view.FP32Bytes))
	return report.InspectTable(opts.stdout, view)
}
