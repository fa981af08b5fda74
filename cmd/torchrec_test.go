package cmd

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/rqtools/rq/internal/testshared"
)

// TestInspectTorchRec: rq inspect reads TorchRec's DLRM and DLRM_DCN (both
// file formats) and shows the family, the interaction and the cross layers
// between the tables and the over arch.
func TestInspectTorchRec(t *testing.T) {
	cases := []struct {
		file  string
		wants []string
	}{
		{"dlrm.safetensors", []string{"torchrec DLRM naming", "interaction dot-triu", "top MLP 367-256-128-1", "over_arch.model.1"}},
		{"dcn.pt", []string{"torchrec DLRM_DCN naming", "interaction dcn", "top MLP 432-256-128-1", "inter_arch.crossnet.V_kernels.0", "inter_arch.crossnet.W_kernels.2"}},
		{"multi-hot/dcn.safetensors", []string{"torchrec DLRM_DCN naming", "inter_arch.crossnet.V_kernels.1"}},
	}
	for _, c := range cases {
		out, stderr, code := rq(t, "inspect", testshared.Path(t, filepath.Join("criteo-torchrec", c.file)))
		if code != 0 {
			t.Fatalf("%s: exit %d: %s", c.file, code, stderr)
		}
		for _, w := range c.wants {
			if !strings.Contains(out, w) {
				t.Errorf("%s: output does not mention %q:\n%s", c.file, w, out)
			}
		}
		// The cross layers come after the last table and before the over arch.
		if i, j := strings.LastIndex(out, "t_cat_25"), strings.Index(out, "inter_arch.crossnet"); j >= 0 && (j < i || j > strings.Index(out, "over_arch.model.0")) {
			t.Errorf("%s: cross layers out of place:\n%s", c.file, out)
		}
	}
}
