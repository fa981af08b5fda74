// Package docs holds no code: it exists for the tests of the documentation
// beside it. manifests_test.go decodes every Kubernetes and Argo manifest in
// docs/*.md strictly with the real API types and checks the rq command lines
// in them against rq's own command tree, so a typo in a manifest fails CI
// rather than a user's cluster.
package docs
