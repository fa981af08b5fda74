package cmd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/rqtools/rq/internal/mapfault"
	"github.com/spf13/cobra"
)

// Version is rq's version; release builds set it with -ldflags "-X github.com/rqtools/rq/cmd.Version=v1.2.3".
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	v := "devel"
	if bi, ok := debug.ReadBuildInfo(); ok {
		if bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
	}
	return v
}

// globalOptions are flags every command has.
type globalOptions struct {
	quiet  bool
	stdout io.Writer
	stderr io.Writer
}

// NewRootCmd builds the rq command tree writing to the given streams.
func NewRootCmd(stdout, stderr io.Writer) *cobra.Command {
	g := &globalOptions{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "rq",
		Short: "Take fp32 DLRM recommendation models to low precision without losing accuracy, and prove it",
		Long: `rq takes a trained fp32 recommendation model (DLRM family: embedding tables, bottom MLP,
feature interaction, top MLP) to low precision without losing accuracy, and proves it.

Models: facebookresearch/dlrm checkpoints (.pt) and safetensors state dicts.
Data: the DLRM processed .npz (X_int, X_cat, y) and raw Criteo TSV.

` + exitCodesHelp,
		Version:       version(),
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.PersistentFlags().BoolVarP(&g.quiet, "quiet", "q", false, "no progress output on stderr")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	root.AddCommand(
		newCalibrateCmd(g, nil),
		newQuantizeCmd(g, nil),
		newSearchCmd(g, nil),
		newEvalCmd(g, nil),
		newInspectCmd(g, nil),
		newDemoCmd(g, nil),
		newBenchCmd(g, nil),
		newDebugCmd(g, nil),
		newMonitorCmd(g, nil),
		newMergeCmd(g, nil),
	)
	for _, c := range root.Commands() {
		if c.Annotations["exitcodes"] != "no" {
			c.Long = strings.TrimSpace(c.Long) + "\n\n" + exitCodesHelp
		}
	}
	return root
}

// execute runs rq in this process, stopping on SIGINT, SIGTERM and SIGHUP
// as interrupt.go describes.
func execute(args []string) int {
	ctx, release := interruptContext(context.Background(), os.Stderr, os.Exit)
	defer release()
	return run(ctx, args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := NewRootCmd(stdout, stderr)
	root.SetArgs(args)
	err := executeGuarded(ctx, root)
	if ie, ok := interruptCause(ctx); ok {
		// Stopped by a signal: whatever the command returned (its error
		// is most likely the cancellation), say so and exit 128+signal.
		fmt.Fprintf(stderr, "rq: %s\n", ie.Error())
		return ie.exitCode()
	}
	if err != nil {
		// cobra reports unknown commands and wrong argument counts as plain errors.
		msg := err.Error()
		code := exitCode(err)
		if code == ExitError && (strings.HasPrefix(msg, "unknown command") || strings.HasPrefix(msg, "accepts ") ||
			strings.HasPrefix(msg, "requires at least") || strings.HasPrefix(msg, "unknown flag") || strings.HasPrefix(msg, "invalid argument")) {
			code = ExitUsage
		}
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			msg = "interrupted; nothing was left half-written (outputs are replaced only when complete)"
		}
		fmt.Fprintf(stderr, "rq: %s\n", oneLine(msg))
		return code
	}
	return ExitOK
}

// executeGuarded runs the command with memory faults turned into panics, and
// a fault inside a mapped model file into an error naming the file (exit 1)
// rather than a crash and a goroutine dump (internal/mapfault).
func executeGuarded(ctx context.Context, root *cobra.Command) (err error) {
	defer mapfault.Guard()()
	defer mapfault.Catch(&err)
	return root.ExecuteContext(ctx)
}

// oneLine folds a multi-line message so every error is one line on stderr.
func oneLine(s string) string {
	return strings.Join(strings.Fields(strings.ReplaceAll(s, "\n", " ")), " ")
}
