// kstatus computes the kstatus of Kubernetes objects with sigs.k8s.io/cli-utils/pkg/kstatus/status
// (the library Flux and kpt use to decide whether what they applied has settled), pinned in go.mod.
//
// Input (stdin): a JSON array of Kubernetes objects as read from the API server (each with apiVersion
// and kind: kstatus picks its rules by group and kind).
// Output (stdout): a JSON array, in input order:
//
//	[{"kind": "Account", "name": "acme", "namespace": "", "status": "Current", "message": "..."}]
//
// status is what status.Compute returns (Current, InProgress, Failed, Terminating). When Compute
// returns an error for an object (a malformed status, e.g. a condition that is not an object), the
// status is Unknown and the message is the error, as kstatus' own status poller reports it. NotFound is
// never produced here (every input object exists); a caller that reads objects reports it itself.
//
// Exit status 2, with a message on stderr, on bad input.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

type result struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Status    string `json:"status"`
	Message   string `json:"message"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// apimachinery's JSON decoding keeps integers as int64, which kstatus' field accessors require
	// (metadata.generation, status.observedGeneration); encoding/json would give float64.
	var objects []any
	if err := utiljson.Unmarshal(data, &objects); err != nil {
		fail("bad input: not a JSON array: %v", err)
	}
	if objects == nil {
		fail("bad input: not a JSON array")
	}
	out := make([]result, 0, len(objects))
	for i, o := range objects {
		obj, ok := o.(map[string]any)
		if !ok {
			fail("bad input: element %d is not an object", i)
		}
		u := &unstructured.Unstructured{Object: obj}
		if u.GetAPIVersion() == "" || u.GetKind() == "" {
			fail("bad input: element %d (%q) has no apiVersion or kind", i, u.GetName())
		}
		r := result{Kind: u.GetKind(), Name: u.GetName(), Namespace: u.GetNamespace()}
		res, err := status.Compute(u)
		if err != nil {
			r.Status, r.Message = string(status.UnknownStatus), err.Error()
		} else {
			r.Status, r.Message = string(res.Status), res.Message
		}
		out = append(out, r)
	}
	if err := json.NewEncoder(os.Stdout).Encode(out); err != nil {
		fail("writing stdout: %v", err)
	}
}
