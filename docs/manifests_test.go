package docs_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/spf13/pflag"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"

	"github.com/rqtools/rq/cmd"
	"github.com/rqtools/rq/dataset"
)

// TestManifests decodes every manifest of docs/*.md and checks what a typo
// could break while the manifest still decodes (see docs/kubernetes.md,
// "What the test checks").
func TestManifests(t *testing.T) {
	pages, err := filepath.Glob("*.md")
	if err != nil || len(pages) == 0 {
		t.Fatalf("no docs/*.md found (%v): run the test from the docs package", err)
	}
	entry := entrypointOf(t)
	kinds := map[string]int{}
	for _, file := range pages {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p := checkPage(file, string(src), entry)
		for _, err := range p.errs {
			t.Error(err)
		}
		if file == "kubernetes.md" {
			kinds = p.kinds
		}
	}
	// The checks above pass vacuously on a page with no manifests: make sure
	// the Kubernetes page's blocks were found and decoded.
	for _, k := range []string{"batch/v1 Job", "v1 Secret", "argoproj.io/v1alpha1 Workflow"} {
		if kinds[k] == 0 {
			t.Errorf("docs/kubernetes.md: no %s found in its ```yaml blocks (found %v)", k, kinds)
		}
	}
}

// TestManifestChecksCatchTypos makes one typo at a time in
// docs/kubernetes.md and requires the checks to report it: each is a
// mistake that still reads as plausible YAML.
func TestManifestChecksCatchTypos(t *testing.T) {
	src, err := os.ReadFile("kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	entry := entrypointOf(t)
	if errs := checkPage("kubernetes.md", string(src), entry).errs; len(errs) > 0 {
		t.Fatalf("docs/kubernetes.md has errors before any typo: %v", errs)
	}
	typos := []struct{ old, new, want string }{
		{"  completions: 8 ", "  completion: 8 ", `unknown field "spec.completion"`},
		{"  backoffLimitPerIndex: 2", "  BackoffLimitPerIndex: 2", `unknown field "spec.BackoffLimitPerIndex"`}, // case matters to the API server
		{"  parallelism: 8 ", "  parallelism: 8\n  parallelism: 8 ", `key "parallelism" already set`},
		{"kind: Job", "kind: Jobs", `kind "Jobs"`},
		{"  completions: 8 ", "  completions: 7 ", "want 0/7"},
		{"--shard=$(JOB_COMPLETION_INDEX)/8", "--shard=$(JOB_COMPLETION_INDX)/8", "$(JOB_COMPLETION_INDX)"},
		{"--threads=$(RQ_THREADS)", "--threads=$(RQ_THREAD)", "$(RQ_THREAD)"},
		{"- --state-out=", "- --state-output=", "unknown flag: --state-output"},
		{"        - eval\n", "        - evaluate\n", `unknown command "evaluate"`},
		{"- --max-ne-delta=0.05", "- --max-ne-delta=five", "invalid argument"},
		{"state.$(JOB_COMPLETION_INDEX).json", "state.json", "both write"},
		{"        - s3://rq-evals/day23-int8/states/", "        - s3://rq-evals/day23-int8/state/", "no shard step on this page writes"},
		{"--output=s3://rq-evals/day23-int8/merged.json", "--output=s3://rq-evals/day23-int8/states/merged.json", "inside its input prefix"},
		{"            memory: 768Mi", "            memory: 2Gi", "memory request 2Gi is over its limit 1Gi"},
		{"values: [2, 3]", "values: [3, 2]", "sorted"},
		{"values: [2, 3]", "values: [1, 2, 3]", "must be retried"},
		{"values: [2, 3]", "values: [2]", "FailJob"},
		{"        containerName: rq\n", "        containerName: rq-main\n", `containerName "rq-main"`},
		{"      restartPolicy: Never ", "      restartPolicy: OnFailure ", "restartPolicy"},
		{`        command: ["/rq"]`, `        command: ["/bin/rq"]`, "entrypoint"},
		{"            name: rq-object-store", "            name: rq-object-stor", `no Secret "rq-object-stor"`},
		{`          count: "8"`, `          count: "7"`, "want 0/7"},
		{"withSequence:", "withSequense:", `unknown field "spec.templates[0].dag.tasks[0].withSequense"`},
		{"{{inputs.parameters.index}}/8", "{{inputs.parameters.idx}}/8", "{{inputs.parameters.idx}}"},
		{"depends: shard.Succeeded", "depends: shards.Succeeded", `no task "shards"`},
		{"      image: registry.example.com/ml/rq:v1\n      command", "      imag: registry.example.com/ml/rq:v1\n      command", `unknown field "spec.templates[1].container.imag"`},
		{`!(asInt(lastRetry.exitCode) in [2, 3])`, `!(asInt(lastRetry.exitCode) in [2])`, "retryStrategy"},
	}
	for _, ty := range typos {
		if !strings.Contains(string(src), ty.old) {
			t.Errorf("typo %q -> %q: docs/kubernetes.md no longer contains %q; update this test", ty.old, ty.new, ty.old)
			continue
		}
		bad := strings.Replace(string(src), ty.old, ty.new, 1)
		errs := checkPage("kubernetes.md", bad, entry).errs
		found := false
		for _, err := range errs {
			found = found || strings.Contains(err.Error(), ty.want)
		}
		if !found {
			t.Errorf("typo %q -> %q: want an error containing %q, got %v", ty.old, ty.new, ty.want, errs)
		}
		t.Logf("typo %q -> %q: %v", ty.old, ty.new, errs)
	}
}

// TestUnknownKindFails: a manifest of a kind the test cannot check is an
// error, not a skip, so a new kind is added to decodeTarget on purpose.
func TestUnknownKindFails(t *testing.T) {
	src := "```yaml\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\n```\n"
	errs := checkPage("x.md", src, "/rq").errs
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), `kind "Deployment"`) {
		t.Fatalf("want one error naming the kind Deployment, got %v", errs)
	}
}

// entrypointOf reads the image's entrypoint from the Dockerfile block of
// docs/kubernetes.md: the manifests' command must be that path.
func entrypointOf(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile("kubernetes.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range fencedBlocks(string(src)) {
		if b.lang != "dockerfile" {
			continue
		}
		for _, l := range strings.Split(b.text, "\n") {
			if rest, ok := strings.CutPrefix(l, "ENTRYPOINT "); ok {
				var argv []string
				if err := json.Unmarshal([]byte(rest), &argv); err != nil || len(argv) == 0 {
					t.Fatalf("docs/kubernetes.md:%d: ENTRYPOINT %s: want the exec form, a JSON array", b.line, rest)
				}
				return argv[0]
			}
		}
	}
	t.Fatal("docs/kubernetes.md: no ```dockerfile block with an ENTRYPOINT")
	return ""
}

type block struct {
	lang string
	line int // the block's first line in the file (1-based)
	text string
}

// fencedBlocks returns the fenced code blocks of a Markdown file.
func fencedBlocks(src string) []block {
	var out []block
	var cur *block
	for i, l := range strings.Split(src, "\n") {
		l = strings.TrimRight(l, " \t\r")
		switch {
		case cur == nil && strings.HasPrefix(l, "```"):
			cur = &block{lang: strings.TrimSpace(l[3:]), line: i + 2}
		case cur != nil && l == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.text += l + "\n"
		}
	}
	if cur != nil {
		cur.text = "\x00unterminated" // reported by yamlDocs
		out = append(out, *cur)
	}
	return out
}

// yamlDocs splits the ```yaml blocks of a page into YAML documents.
func yamlDocs(file, src string) ([]block, error) {
	var out []block
	for _, b := range fencedBlocks(src) {
		if b.lang != "yaml" {
			continue
		}
		if b.text == "\x00unterminated" {
			return nil, fmt.Errorf("docs/%s:%d: a ```yaml block with no closing fence", file, b.line-1)
		}
		d := block{lang: "yaml", line: b.line}
		for i, l := range strings.Split(b.text, "\n") {
			if l == "---" {
				out = appendDoc(out, d)
				d = block{lang: "yaml", line: b.line + i + 1}
				continue
			}
			d.text += l + "\n"
		}
		out = appendDoc(out, d)
	}
	return out, nil
}

// appendDoc drops documents of comments and blank lines only.
func appendDoc(out []block, d block) []block {
	for _, l := range strings.Split(d.text, "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			return append(out, d)
		}
	}
	return out
}

// Argo Workflows' Workflow type is not in k8s.io/api, and its Go module
// (github.com/argoproj/argo-workflows) is far too large to import for a
// docs test. These types mirror the parts of its v1alpha1 schema that the
// docs use (pkg/apis/workflow/v1alpha1/workflow_types.go: the same field
// names and JSON tags), so strict decoding rejects any field the docs
// misspell; a field Argo has and these do not is rejected too, so add it here
// when a manifest needs it. Containers, volumes and security contexts are the
// real corev1 types, checked as in a Job.
type workflow struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              workflowSpec `json:"spec"`
}

type workflowSpec struct {
	Templates             []argoTemplate             `json:"templates,omitempty"`
	Entrypoint            string                     `json:"entrypoint,omitempty"`
	Arguments             argoArguments              `json:"arguments,omitempty"`
	ServiceAccountName    string                     `json:"serviceAccountName,omitempty"`
	Volumes               []corev1.Volume            `json:"volumes,omitempty"`
	Parallelism           *int64                     `json:"parallelism,omitempty"`
	NodeSelector          map[string]string          `json:"nodeSelector,omitempty"`
	TTLStrategy           *argoTTLStrategy           `json:"ttlStrategy,omitempty"`
	ActiveDeadlineSeconds *int64                     `json:"activeDeadlineSeconds,omitempty"`
	SecurityContext       *corev1.PodSecurityContext `json:"securityContext,omitempty"`
}

type argoTTLStrategy struct {
	SecondsAfterCompletion *int32 `json:"secondsAfterCompletion,omitempty"`
	SecondsAfterSuccess    *int32 `json:"secondsAfterSuccess,omitempty"`
	SecondsAfterFailure    *int32 `json:"secondsAfterFailure,omitempty"`
}

type argoTemplate struct {
	Name          string             `json:"name,omitempty"`
	Inputs        argoInputs         `json:"inputs,omitempty"`
	Container     *corev1.Container  `json:"container,omitempty"`
	DAG           *argoDAG           `json:"dag,omitempty"`
	Volumes       []corev1.Volume    `json:"volumes,omitempty"`
	RetryStrategy *argoRetryStrategy `json:"retryStrategy,omitempty"`
}

type argoInputs struct {
	Parameters []argoParameter `json:"parameters,omitempty"`
}

type argoArguments struct {
	Parameters []argoParameter `json:"parameters,omitempty"`
}

// argoParameter's Value is Argo's AnyString, which also takes a number or a
// boolean; a string here, so the docs quote their values.
type argoParameter struct {
	Name    string  `json:"name"`
	Default *string `json:"default,omitempty"`
	Value   *string `json:"value,omitempty"`
}

type argoDAG struct {
	Target   string        `json:"target,omitempty"`
	Tasks    []argoDAGTask `json:"tasks"`
	FailFast *bool         `json:"failFast,omitempty"`
}

type argoDAGTask struct {
	Name         string        `json:"name"`
	Template     string        `json:"template,omitempty"`
	Arguments    argoArguments `json:"arguments,omitempty"`
	Dependencies []string      `json:"dependencies,omitempty"`
	WithSequence *argoSequence `json:"withSequence,omitempty"`
	When         string        `json:"when,omitempty"`
	Depends      string        `json:"depends,omitempty"`
}

type argoSequence struct {
	Count  *intstr.IntOrString `json:"count,omitempty"`
	Start  *intstr.IntOrString `json:"start,omitempty"`
	End    *intstr.IntOrString `json:"end,omitempty"`
	Format string              `json:"format,omitempty"`
}

type argoRetryStrategy struct {
	Limit       *intstr.IntOrString `json:"limit,omitempty"`
	RetryPolicy string              `json:"retryPolicy,omitempty"`
	Expression  string              `json:"expression,omitempty"`
}

// decodeTarget is the type a manifest of apiVersion and kind decodes into.
func decodeTarget(apiVersion, kind string) (any, bool) {
	switch apiVersion + " " + kind {
	case "batch/v1 Job":
		return &batchv1.Job{}, true
	case "v1 Secret":
		return &corev1.Secret{}, true
	case "v1 ConfigMap":
		return &corev1.ConfigMap{}, true
	case "v1 ServiceAccount":
		return &corev1.ServiceAccount{}, true
	case "argoproj.io/v1alpha1 Workflow":
		return &workflow{}, true
	}
	return nil, false
}

// decode converts a YAML document to JSON (a key given twice is an error)
// and decodes it with sigs.k8s.io/json's strict mode, the decoding the API
// server does for kubectl --validate=strict: an unknown field, a field in
// the wrong case, a duplicate field or a value of the wrong type is an error.
// (sigs.k8s.io/yaml's UnmarshalStrict uses encoding/json, which matches
// field names regardless of case.)
func decode(file string, d block) (kind string, obj any, err error) {
	where := fmt.Sprintf("docs/%s:%d", file, d.line)
	j, err := yaml.YAMLToJSONStrict([]byte(d.text))
	if err != nil {
		// The YAML parser counts lines from the document's start: count
		// them in the Markdown file instead.
		msg := yamlLine.ReplaceAllStringFunc(err.Error(), func(m string) string {
			n, _ := strconv.Atoi(m[len("line "):])
			return fmt.Sprintf("line %d", d.line+n-1)
		})
		return "", nil, fmt.Errorf("docs/%s: %s", file, oneLine(msg))
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return "", nil, fmt.Errorf("%s: not a manifest (a ```yaml block holds Kubernetes manifests; put other YAML in a ```text block): %v", where, err)
	}
	obj, ok := decodeTarget(tm.APIVersion, tm.Kind)
	if !ok {
		return "", nil, fmt.Errorf("%s: apiVersion %q kind %q: a kind this test cannot check (add its type to decodeTarget; a ```yaml block holds manifests only, other YAML goes in a ```text block)", where, tm.APIVersion, tm.Kind)
	}
	strict, err := kjson.UnmarshalStrict(j, obj)
	if err != nil {
		return "", nil, fmt.Errorf("%s: %s: %v", where, tm.Kind, err)
	}
	if len(strict) > 0 {
		return "", nil, fmt.Errorf("%s: %s: %v", where, tm.Kind, errors.Join(strict...))
	}
	return tm.APIVersion + " " + tm.Kind, obj, nil
}

// page is what the checks of one Markdown file collect.
type page struct {
	file       string
	entrypoint string
	kinds      map[string]int
	secrets    map[string]map[string]string // name -> its keys and values
	configMaps map[string]map[string]string
	written    map[string]string // prefix shard steps write -> where
	merged     map[string]string // prefix merges read -> where
	errs       []error
}

func (p *page) errorf(format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf(format, args...))
}

func checkPage(file, src, entrypoint string) *page {
	p := &page{file: file, entrypoint: entrypoint, kinds: map[string]int{},
		secrets: map[string]map[string]string{}, configMaps: map[string]map[string]string{},
		written: map[string]string{}, merged: map[string]string{}}
	docs, err := yamlDocs(file, src)
	if err != nil {
		p.errs = append(p.errs, err)
		return p
	}
	type decoded struct {
		d   block
		obj any
	}
	var all []decoded
	for _, d := range docs {
		kind, obj, err := decode(file, d)
		if err != nil {
			p.errs = append(p.errs, err)
			continue
		}
		p.kinds[kind]++
		all = append(all, decoded{d, obj})
		// Secrets and ConfigMaps first: the workloads refer to them.
		switch o := obj.(type) {
		case *corev1.Secret:
			kv := map[string]string{}
			for k, v := range o.Data {
				kv[k] = string(v)
			}
			for k, v := range o.StringData {
				kv[k] = v
			}
			p.secrets[o.Name] = kv
		case *corev1.ConfigMap:
			p.configMaps[o.Name] = o.Data
		}
	}
	for _, a := range all {
		where := fmt.Sprintf("docs/%s:%d", file, a.d.line)
		switch o := a.obj.(type) {
		case *batchv1.Job:
			p.checkJob(where+": Job "+o.Name, o)
		case *workflow:
			p.checkWorkflow(where+": Workflow "+o.Name+o.GenerateName, o)
		}
	}
	for _, prefix := range sortedKeys(p.merged) {
		if _, ok := p.written[prefix]; !ok {
			p.errorf("%s: rq merge reads %s, which no shard step on this page writes (they write %v)", p.merged[prefix], prefix, sortedKeys(p.written))
		}
	}
	for _, prefix := range sortedKeys(p.written) {
		if _, ok := p.merged[prefix]; !ok {
			p.errorf("%s: the shards write under %s, which no rq merge on this page reads (it merges %v)", p.written[prefix], prefix, sortedKeys(p.merged))
		}
	}
	return p
}

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func (p *page) checkJob(where string, j *batchv1.Job) {
	spec := j.Spec
	pod := spec.Template.Spec
	indexed := spec.CompletionMode != nil && *spec.CompletionMode == batchv1.IndexedCompletion
	if spec.BackoffLimitPerIndex != nil && !indexed {
		p.errorf("%s: backoffLimitPerIndex needs completionMode: Indexed", where)
	}
	if pod.RestartPolicy != corev1.RestartPolicyNever {
		p.errorf("%s: restartPolicy %q: want Never (podFailurePolicy and backoffLimitPerIndex need it; the Job makes the replacement pod)", where, pod.RestartPolicy)
	}
	p.checkFailurePolicy(where, spec)
	n := 0 // pods fanned out; 0: not an Indexed Job
	if indexed {
		if spec.Completions == nil || *spec.Completions < 1 {
			p.errorf("%s: an Indexed Job needs completions", where)
			return
		}
		n = int(*spec.Completions)
	}
	for _, c := range pod.Containers {
		cw := where + ", container " + c.Name
		p.checkResources(cw, c)
		f := newFanout()
		for i := 0; i < max(n, 1); i++ {
			env, err := p.containerEnv(c, i, indexed)
			if err != nil {
				p.errorf("%s: %v", cw, err)
				break
			}
			call, err := p.parseRQ(c, env, nil)
			if err != nil {
				p.errorf("%s: %v", cw, err)
				break
			}
			if !p.checkCall(cw, call, i, n, f) {
				break
			}
		}
	}
}

// checkFailurePolicy: rq's exit codes as docs/kubernetes.md promises them,
// and the rules the API server would refuse.
func (p *page) checkFailurePolicy(where string, spec batchv1.JobSpec) {
	pfp := spec.PodFailurePolicy
	if pfp == nil {
		p.errorf("%s: no podFailurePolicy: rq's usage and budget exit codes (%d, %d) would be retried", where, cmd.ExitUsage, cmd.ExitBudget)
		return
	}
	containers := map[string]bool{}
	for _, c := range spec.Template.Spec.Containers {
		containers[c.Name] = true
	}
	failJob := map[int32]bool{}
	for i, r := range pfp.Rules {
		rw := fmt.Sprintf("%s: podFailurePolicy.rules[%d]", where, i)
		if (r.OnExitCodes == nil) == (len(r.OnPodConditions) == 0) {
			p.errorf("%s: give exactly one of onExitCodes and onPodConditions", rw)
		}
		if r.Action == batchv1.PodFailurePolicyActionFailIndex && spec.BackoffLimitPerIndex == nil {
			p.errorf("%s: FailIndex needs backoffLimitPerIndex", rw)
		}
		e := r.OnExitCodes
		if e == nil {
			continue
		}
		if e.ContainerName != nil && !containers[*e.ContainerName] {
			p.errorf("%s: containerName %q is not a container of the pod", rw, *e.ContainerName)
		}
		if len(e.Values) == 0 || !slices.IsSorted(e.Values) || len(slices.Compact(slices.Clone(e.Values))) != len(e.Values) {
			p.errorf("%s: values %v: the API server wants them sorted and distinct, at least one", rw, e.Values)
		}
		if e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn && slices.Contains(e.Values, 0) {
			p.errorf("%s: values %v: 0 cannot be used with In", rw, e.Values)
		}
		if r.Action == batchv1.PodFailurePolicyActionFailJob && e.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn {
			for _, v := range e.Values {
				failJob[v] = true
			}
		}
	}
	if !failJob[cmd.ExitUsage] || !failJob[cmd.ExitBudget] {
		p.errorf("%s: podFailurePolicy: want FailJob on rq's usage (%d) and budget (%d) exit codes: retrying cannot change them", where, cmd.ExitUsage, cmd.ExitBudget)
	}
	if failJob[cmd.ExitError] {
		p.errorf("%s: podFailurePolicy fails the Job on exit %d, which must be retried (it is also a network error or a runtime failure)", where, cmd.ExitError)
	}
}

// checkResources: CPU and memory requested and limited, request <= limit.
func (p *page) checkResources(where string, c corev1.Container) {
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okReq := c.Resources.Requests[r]
		lim, okLim := c.Resources.Limits[r]
		if !okReq {
			p.errorf("%s: no %s request (docs/kubernetes.md sizes them from measurements)", where, r)
		}
		if !okLim {
			p.errorf("%s: no %s limit", where, r)
		}
		if okReq && okLim && req.Cmp(lim) > 0 {
			p.errorf("%s: %s request %s is over its limit %s", where, r, req.String(), lim.String())
		}
	}
}

// indexFieldPaths are where the Job controller's JOB_COMPLETION_INDEX comes
// from (annotation, or label where the PodIndexLabel feature is on).
var indexFieldPaths = map[string]bool{
	"metadata.annotations['batch.kubernetes.io/job-completion-index']": true,
	"metadata.labels['batch.kubernetes.io/job-completion-index']":      true,
}

// containerEnv is the environment Kubernetes gives container c of pod
// index i: envFrom, env (resourceFieldRef resolved from c's resources as the
// kubelet does), and in an Indexed Job JOB_COMPLETION_INDEX, which the Job
// controller adds to every container.
func (p *page) containerEnv(c corev1.Container, i int, indexed bool) (map[string]string, error) {
	env := map[string]string{}
	for _, ef := range c.EnvFrom {
		var kv map[string]string
		switch {
		case ef.SecretRef != nil:
			var ok bool
			if kv, ok = p.secrets[ef.SecretRef.Name]; !ok {
				return nil, fmt.Errorf("envFrom: no Secret %q on this page (it has %v)", ef.SecretRef.Name, sortedKeys(p.secrets))
			}
		case ef.ConfigMapRef != nil:
			var ok bool
			if kv, ok = p.configMaps[ef.ConfigMapRef.Name]; !ok {
				return nil, fmt.Errorf("envFrom: no ConfigMap %q on this page", ef.ConfigMapRef.Name)
			}
		}
		for k, v := range kv {
			env[ef.Prefix+k] = v
		}
	}
	for _, e := range c.Env {
		switch vf := e.ValueFrom; {
		case vf == nil:
			env[e.Name] = e.Value
		case vf.ResourceFieldRef != nil:
			v, err := resourceValue(c, vf.ResourceFieldRef)
			if err != nil {
				return nil, fmt.Errorf("env %s: %v", e.Name, err)
			}
			env[e.Name] = v
		case vf.FieldRef != nil && indexFieldPaths[vf.FieldRef.FieldPath]:
			if !indexed {
				return nil, fmt.Errorf("env %s: the completion index exists only in an Indexed Job", e.Name)
			}
			env[e.Name] = strconv.Itoa(i)
		default:
			env[e.Name] = "value-of-" + e.Name
		}
	}
	if _, ok := env["JOB_COMPLETION_INDEX"]; indexed && !ok {
		env["JOB_COMPLETION_INDEX"] = strconv.Itoa(i)
	}
	if v, ok := env["GOMEMLIMIT"]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err != nil || n <= 0 {
			return nil, fmt.Errorf("env GOMEMLIMIT=%q: want a number of bytes", v)
		}
	}
	return env, nil
}

// resourceValue is what the kubelet puts in an env var from a
// resourceFieldRef: the quantity over the divisor, rounded up.
func resourceValue(c corev1.Container, ref *corev1.ResourceFieldSelector) (string, error) {
	if ref.ContainerName != "" && ref.ContainerName != c.Name {
		return "", fmt.Errorf("resourceFieldRef names container %q", ref.ContainerName)
	}
	kind, name, _ := strings.Cut(ref.Resource, ".")
	list := map[string]corev1.ResourceList{"requests": c.Resources.Requests, "limits": c.Resources.Limits}[kind]
	if list == nil || (name != "cpu" && name != "memory") {
		return "", fmt.Errorf("resourceFieldRef %q: want requests or limits of cpu or memory", ref.Resource)
	}
	q, ok := list[corev1.ResourceName(name)]
	if !ok {
		return "", fmt.Errorf("resourceFieldRef %q: not set in resources (Kubernetes would give the node's capacity)", ref.Resource)
	}
	div := ref.Divisor
	if div.IsZero() {
		div = resource.MustParse("1")
	}
	if name == "cpu" {
		return strconv.FormatInt((q.MilliValue()+div.MilliValue()-1)/div.MilliValue(), 10), nil
	}
	return strconv.FormatInt((q.Value()+div.Value()-1)/div.Value(), 10), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

var (
	yamlLine = regexp.MustCompile(`line [0-9]+`)
	k8sVar   = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)`)
	argoVar  = regexp.MustCompile(`\{\{[^}]*\}\}`)
)

// rqCall is one rq command line as rq's own cobra tree parsed it.
type rqCall struct {
	sub   string
	flags map[string]string // flags given, by long name
	args  []string          // positional arguments
}

// parseRQ expands the container's command line as Kubernetes would (Argo's
// {{inputs.parameters.NAME}} first, from params, when params is not nil)
// and parses it with rq's command tree: the subcommand and every flag must
// exist and their values parse.
func (p *page) parseRQ(c corev1.Container, env, params map[string]string) (rqCall, error) {
	if len(c.Command) != 1 || c.Command[0] != p.entrypoint {
		return rqCall{}, fmt.Errorf("command %q: want [%q], the image's entrypoint (the Dockerfile's ENTRYPOINT)", c.Command, p.entrypoint)
	}
	args := make([]string, len(c.Args))
	for i, a := range c.Args {
		if params != nil {
			a = argoVar.ReplaceAllStringFunc(a, func(m string) string {
				if name, ok := strings.CutPrefix(m[2:len(m)-2], "inputs.parameters."); ok {
					if v, ok := params[name]; ok {
						return v
					}
				}
				return m
			})
		}
		if m := argoVar.FindString(a); m != "" {
			return rqCall{}, fmt.Errorf("argument %q: %s is not an input parameter of the template", c.Args[i], m)
		}
		var missing []string
		a = k8sVar.ReplaceAllStringFunc(a, func(m string) string {
			if v, ok := env[m[2:len(m)-1]]; ok {
				return v
			}
			missing = append(missing, m)
			return m
		})
		if missing != nil {
			return rqCall{}, fmt.Errorf("argument %q: %s is not an environment variable of the container (Kubernetes would pass it unexpanded; it has %v)", c.Args[i], strings.Join(missing, ", "), sortedKeys(env))
		}
		args[i] = a
	}
	root := cmd.NewRootCmd(io.Discard, io.Discard)
	sub, rest, err := root.Find(args)
	if err != nil {
		return rqCall{}, fmt.Errorf("rq %s: %v", strings.Join(args, " "), err)
	}
	if sub == root {
		return rqCall{}, fmt.Errorf("rq %s: no rq command given", strings.Join(args, " "))
	}
	if err := sub.ParseFlags(rest); err != nil {
		return rqCall{}, fmt.Errorf("rq %s: %v", strings.Join(args, " "), err)
	}
	pos := sub.Flags().Args()
	if err := sub.ValidateArgs(pos); err != nil {
		return rqCall{}, fmt.Errorf("rq %s: %v", strings.Join(args, " "), err)
	}
	call := rqCall{sub: sub.Name(), flags: map[string]string{}, args: pos}
	sub.Flags().Visit(func(f *pflag.Flag) { call.flags[f.Name] = f.Value.String() })
	return call, nil
}

// fanout collects what the pods of one fan-out write.
type fanout struct {
	outs   map[string]int // output -> the pod writing it
	prefix string         // the prefix they all write under
}

func newFanout() *fanout { return &fanout{outs: map[string]int{}} }

// checkCall checks one expanded rq command line of pod i of a fan-out of n
// (n == 0: a single pod). It returns false after an error, so a fan-out
// reports it once rather than n times.
func (p *page) checkCall(where string, call rqCall, i, n int, f *fanout) bool {
	errs := len(p.errs)
	switch call.sub {
	case "eval", "calibrate":
		outFlag := map[string]string{"eval": "state-out", "calibrate": "output"}[call.sub]
		sh, ok := call.flags["shard"]
		if n == 0 {
			if ok {
				p.errorf("%s: rq %s --shard=%s outside a fan-out (an Indexed Job, or Argo's withSequence)", where, call.sub, sh)
			}
			break
		}
		if !ok {
			p.errorf("%s: %d pods run rq %s without --shard: each would do the whole run", where, n, call.sub)
			break
		}
		s, err := dataset.ParseShard(sh)
		if err != nil {
			p.errorf("%s: pod %d of %d: --shard: %v", where, i, n, err)
			break
		}
		if s.Index != i || s.Count != n {
			p.errorf("%s: pod %d of %d runs rq %s --shard=%s: want %d/%d (the index, and N = the number of pods)", where, i, n, call.sub, sh, i, n)
			break
		}
		out := call.flags[outFlag]
		if out == "" {
			p.errorf("%s: rq %s --shard without --%s: the shard's work would be lost", where, call.sub, outFlag)
			break
		}
		if j, dup := f.outs[out]; dup {
			p.errorf("%s: pods %d and %d both write %s: put the index in the name", where, j, i, out)
			break
		}
		f.outs[out] = i
		prefix := out[:strings.LastIndex(out, "/")+1]
		if f.prefix != "" && prefix != f.prefix {
			p.errorf("%s: pod %d writes under %s, pod 0 under %s: rq merge takes one prefix", where, i, prefix, f.prefix)
			break
		}
		f.prefix = prefix
		p.written[prefix] = where
	case "merge":
		if n > 0 {
			p.errorf("%s: rq merge inside a fan-out", where)
			break
		}
		out := call.flags["output"]
		for _, in := range call.args {
			if !strings.HasSuffix(in, "/") {
				continue
			}
			p.merged[in] = where
			if out != "" && strings.HasPrefix(out, in) {
				p.errorf("%s: rq merge writes %s inside its input prefix %s: the next merge of that prefix would take it in", where, out, in)
			}
		}
	}
	return len(p.errs) == errs
}

func (p *page) checkWorkflow(where string, wf *workflow) {
	templates := map[string]*argoTemplate{}
	for i := range wf.Spec.Templates {
		t := &wf.Spec.Templates[i]
		if templates[t.Name] != nil {
			p.errorf("%s: two templates named %q", where, t.Name)
		}
		templates[t.Name] = t
		if (t.Container == nil) == (t.DAG == nil) {
			p.errorf("%s: template %q: want one of container and dag", where, t.Name)
		}
	}
	if templates[wf.Spec.Entrypoint] == nil {
		p.errorf("%s: entrypoint %q is not a template", where, wf.Spec.Entrypoint)
	}
	for _, t := range wf.Spec.Templates {
		if t.Container != nil {
			tw := where + ", template " + t.Name
			p.checkResources(tw, *t.Container)
			p.checkRetry(tw, t.RetryStrategy)
		}
		if t.DAG == nil {
			continue
		}
		tasks := map[string]bool{}
		for _, task := range t.DAG.Tasks {
			if tasks[task.Name] {
				p.errorf("%s: two tasks named %q", where, task.Name)
			}
			tasks[task.Name] = true
		}
		writer := map[string]string{} // prefix -> the task whose pods write under it
		type merge struct {
			task rqTask
			in   []string
		}
		var merges []merge
		for _, task := range t.DAG.Tasks {
			tw := fmt.Sprintf("%s, task %s", where, task.Name)
			rt, ok := p.checkTask(tw, task, templates, tasks)
			switch {
			case !ok:
			case rt.fan.prefix != "":
				writer[rt.fan.prefix] = task.Name
			case rt.call.sub == "merge":
				merges = append(merges, merge{rt, rt.call.args})
			}
		}
		// A merge that does not wait for its shards reads a partial prefix.
		for _, m := range merges {
			for _, in := range m.in {
				if w, ok := writer[in]; ok && !m.task.after[w] {
					p.errorf("%s, task %s: merges %s, which task %s writes, without depending on it", where, m.task.name, in, w)
				}
			}
		}
	}
}

// rqTask is what checkTask found of a DAG task running rq.
type rqTask struct {
	name  string
	call  rqCall          // the last pod's command line
	fan   *fanout         // what its pods write
	after map[string]bool // the tasks it depends on
}

// dependsResults are the results a depends expression may name after a task.
var dependsResults = map[string]bool{"Succeeded": true, "Failed": true, "Errored": true, "Skipped": true,
	"Omitted": true, "Daemoned": true, "AnySucceeded": true, "AllFailed": true}

func (p *page) checkTask(where string, task argoDAGTask, templates map[string]*argoTemplate, tasks map[string]bool) (rqTask, bool) {
	rt := rqTask{name: task.Name, fan: newFanout(), after: map[string]bool{}}
	for _, tok := range regexp.MustCompile(`[A-Za-z0-9_.-]+`).FindAllString(task.Depends, -1) {
		name, result, dotted := strings.Cut(tok, ".")
		rt.after[name] = true
		if !tasks[name] {
			p.errorf("%s: depends %q: no task %q in this DAG", where, task.Depends, name)
		}
		if dotted && !dependsResults[result] {
			p.errorf("%s: depends %q: %q is not a task result", where, task.Depends, result)
		}
	}
	for _, d := range task.Dependencies {
		rt.after[d] = true
		if !tasks[d] {
			p.errorf("%s: dependencies: no task %q in this DAG", where, d)
		}
	}
	t := templates[task.Template]
	if t == nil {
		p.errorf("%s: template %q does not exist", where, task.Template)
		return rt, false
	}
	if t.Container == nil {
		return rt, false
	}
	n := 0
	if s := task.WithSequence; s != nil {
		if s.Count == nil || s.Start != nil || s.End != nil {
			p.errorf("%s: withSequence: give count (the test checks it against --shard), not start/end", where)
			return rt, false
		}
		n = s.Count.IntValue()
		if n < 1 || s.Count.String() != strconv.Itoa(n) {
			p.errorf("%s: withSequence count %q: want a number of shards", where, s.Count.String())
			return rt, false
		}
	}
	declared := map[string]*argoParameter{}
	for i := range t.Inputs.Parameters {
		declared[t.Inputs.Parameters[i].Name] = &t.Inputs.Parameters[i]
	}
	for i := 0; i < max(n, 1); i++ {
		params := map[string]string{}
		for _, a := range task.Arguments.Parameters {
			if declared[a.Name] == nil {
				p.errorf("%s: passes parameter %q, which template %q does not declare", where, a.Name, t.Name)
				return rt, false
			}
			if a.Value == nil {
				p.errorf("%s: parameter %q has no value", where, a.Name)
				return rt, false
			}
			v := *a.Value
			if n > 0 {
				v = strings.ReplaceAll(v, "{{item}}", strconv.Itoa(i))
			}
			if m := argoVar.FindString(v); m != "" {
				p.errorf("%s: parameter %q: %s is not a value this task has", where, a.Name, m)
				return rt, false
			}
			params[a.Name] = v
		}
		for name, d := range declared {
			if _, ok := params[name]; ok {
				continue
			}
			switch {
			case d.Value != nil:
				params[name] = *d.Value
			case d.Default != nil:
				params[name] = *d.Default
			default:
				p.errorf("%s: template %q needs parameter %q, which the task does not give", where, t.Name, name)
				return rt, false
			}
		}
		env, err := p.containerEnv(*t.Container, i, false)
		if err != nil {
			p.errorf("%s: %v", where, err)
			return rt, false
		}
		call, err := p.parseRQ(*t.Container, env, params)
		if err != nil {
			p.errorf("%s: %v", where, err)
			return rt, false
		}
		rt.call = call
		if !p.checkCall(where, call, i, n, rt.fan) {
			return rt, false
		}
	}
	return rt, true
}

// checkRetry: an Argo step running rq retries, except on rq's usage and
// budget exit codes (the Argo counterpart of the Jobs' podFailurePolicy).
func (p *page) checkRetry(where string, r *argoRetryStrategy) {
	want := fmt.Sprintf("!(asInt(lastRetry.exitCode) in [%d, %d])", cmd.ExitUsage, cmd.ExitBudget)
	if r == nil || r.Expression != want {
		var got any
		if r != nil {
			got = r.Expression
		}
		p.errorf("%s: retryStrategy.expression %v: want %q, so that rq's usage and budget exit codes are not retried", where, got, want)
	}
}
