// netpol-oracle judges NetworkPolicy probes with the matcher of cyclonus
// (github.com/mattfenwick/cyclonus/pkg/matcher, pinned in go.mod), an engine independent of Covenant.
//
// Input (stdin), one JSON document:
//
//	{"policies": [<NetworkPolicy objects as the API server returns them, networking.k8s.io/v1>],
//	 "probes": [{"name": "tenant -> dns",
//	             "from": {"namespace": "acme", "namespaceLabels": {...}, "podLabels": {...}, "ip": "10.0.0.5"},
//	             "to": {"ip": "8.8.8.8"},
//	             "port": 443, "portName": "", "protocol": "TCP"}]}
//
// A peer with "namespace" is a pod in the cluster; a peer without one is outside the cluster. Every peer
// needs an "ip". "portName" is optional: the name of the destination's container port, which is what
// a policy's named port is matched against (cyclonus does not resolve names itself).
//
// Output (stdout), one JSON document, results in probe order:
//
//	{"results": [{"name": "...", "allowed": true, "ingress": true, "egress": true, "explanation": "..."}]}
//
// Exit status 2, with a message on stderr, on bad input (including a policy cyclonus rejects).
//
// What cyclonus v0.5.6's matcher does, read from its source (and so what this oracle judges):
//   - Direction: a probe is allowed when egress (policies selecting the source pod) and ingress
//     (policies selecting the destination pod) both allow it. A direction whose pod is outside the
//     cluster, or which no policy of that type selects, is allowed.
//   - ipBlock peers are matched against the peer's IP whether the peer is in the cluster or not
//     (IPPeerMatcher.Allows never looks at TrafficPeer.Internal): an ipBlock 0.0.0.0/0 admits an
//     in-cluster pod by its IP too. The Kubernetes API leaves ipBlock on pod IPs to the network plugin
//     ("meant to be cluster-external IPs"; plugins differ); cyclonus matches the IP whatever the peer.
//     This is why an in-cluster peer needs an IP as well. Namespace/pod selectors never match an
//     external peer.
//   - endPort: honoured (PortRangeMatcher: from <= port <= endPort, same protocol).
//   - SCTP: honoured. Protocols are compared as strings; a port entry without a protocol is TCP; a
//     port entry with a protocol and no port matches every port of that protocol.
//   - Named ports: a policy port given by name matches only the probe's "portName", never a number.
//   - Label selectors: matchLabels and In/Exists/DoesNotExist as in Kubernetes. Two deviations from
//     Kubernetes' own selector semantics: NotIn does NOT match an object lacking the key (Kubernetes
//     matches it), and matchLabels {k: ""} matches an object lacking k (Kubernetes requires k present).
//   - A policy without policyTypes, or a peer mixing ipBlock with selectors, makes cyclonus panic; this
//     program reports it as bad input (the API server always sets policyTypes on what it returns).
//   - The policies are not simplified (simplify=false): cyclonus' simplifier does not subtract port
//     ranges (a TODO in its source), and the verdict must not depend on it.
package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strings"

	"github.com/mattfenwick/cyclonus/pkg/matcher"
	v1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
)

type peerIn struct {
	Namespace       *string           `json:"namespace"`
	NamespaceLabels map[string]string `json:"namespaceLabels"`
	PodLabels       map[string]string `json:"podLabels"`
	IP              string            `json:"ip"`
}

type probeIn struct {
	Name     string  `json:"name"`
	From     *peerIn `json:"from"`
	To       *peerIn `json:"to"`
	Port     int     `json:"port"`
	PortName string  `json:"portName"`
	Protocol string  `json:"protocol"`
}

type input struct {
	Policies []*networkingv1.NetworkPolicy `json:"policies"`
	Probes   []probeIn                     `json:"probes"`
}

type result struct {
	Name        string `json:"name"`
	Allowed     bool   `json:"allowed"`
	Ingress     bool   `json:"ingress"`
	Egress      bool   `json:"egress"`
	Explanation string `json:"explanation"`
}

type output struct {
	Results []result `json:"results"`
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "netpol-oracle: "+format+"\n", args...)
	os.Exit(2)
}

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail("reading stdin: %v", err)
	}
	// Unknown fields are an error: a policy field this version of the API types does not know could
	// change the verdict, and must not be dropped silently.
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var in input
	if err := dec.Decode(&in); err != nil {
		fail("bad input: %v", err)
	}
	if dec.More() {
		fail("bad input: more than one JSON document on stdin")
	}
	for i, p := range in.Policies {
		if p == nil {
			fail("bad input: policies[%d] is null", i)
		}
		if len(p.Spec.PolicyTypes) == 0 {
			fail("bad input: policy %s/%s has no spec.policyTypes (the API server always sets them)", p.Namespace, p.Name)
		}
	}
	traffic := make([]*matcher.Traffic, len(in.Probes))
	for i, pr := range in.Probes {
		t, err := buildTraffic(pr)
		if err != nil {
			fail("bad input: probes[%d] (%q): %v", i, pr.Name, err)
		}
		traffic[i] = t
	}

	policy, err := build(in.Policies)
	if err != nil {
		fail("bad input: %v", err)
	}
	out := output{Results: make([]result, 0, len(in.Probes))}
	for i, pr := range in.Probes {
		r, err := judge(policy, traffic[i])
		if err != nil {
			fail("bad input: probes[%d] (%q): %v", i, pr.Name, err)
		}
		r.Name = pr.Name
		out.Results = append(out.Results, r)
	}
	enc := json.NewEncoder(os.Stdout)
	if err := enc.Encode(out); err != nil {
		fail("writing stdout: %v", err)
	}
}

func buildPeer(p *peerIn, side string) (*matcher.TrafficPeer, error) {
	if p == nil {
		return nil, fmt.Errorf("%s is missing", side)
	}
	if net.ParseIP(p.IP) == nil {
		return nil, fmt.Errorf("%s.ip %q is not an IP address (every peer needs one: ipBlocks are matched against it)", side, p.IP)
	}
	if p.Namespace == nil {
		if len(p.NamespaceLabels) != 0 || len(p.PodLabels) != 0 {
			return nil, fmt.Errorf("%s has labels but no namespace (an external peer has only an ip)", side)
		}
		return &matcher.TrafficPeer{IP: p.IP}, nil
	}
	if *p.Namespace == "" {
		return nil, fmt.Errorf("%s.namespace is empty", side)
	}
	nsLabels := p.NamespaceLabels
	if nsLabels == nil {
		nsLabels = map[string]string{}
	}
	podLabels := p.PodLabels
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	return &matcher.TrafficPeer{
		IP: p.IP,
		Internal: &matcher.InternalPeer{
			Namespace:       *p.Namespace,
			NamespaceLabels: nsLabels,
			PodLabels:       podLabels,
		},
	}, nil
}

func buildTraffic(pr probeIn) (*matcher.Traffic, error) {
	from, err := buildPeer(pr.From, "from")
	if err != nil {
		return nil, err
	}
	to, err := buildPeer(pr.To, "to")
	if err != nil {
		return nil, err
	}
	if pr.Port < 1 || pr.Port > 65535 {
		return nil, fmt.Errorf("port %d is not in 1-65535", pr.Port)
	}
	var proto v1.Protocol
	switch pr.Protocol {
	case "TCP", "UDP", "SCTP":
		proto = v1.Protocol(pr.Protocol)
	default:
		return nil, fmt.Errorf("protocol %q is not TCP, UDP or SCTP", pr.Protocol)
	}
	return &matcher.Traffic{
		Source:           from,
		Destination:      to,
		ResolvedPort:     pr.Port,
		ResolvedPortName: pr.PortName,
		Protocol:         proto,
	}, nil
}

// recovered turns a panic of cyclonus (its way of rejecting an invalid policy) into an error.
func recovered(err *error) {
	if r := recover(); r != nil {
		*err = fmt.Errorf("cyclonus rejected the input: %v", r)
	}
}

func build(policies []*networkingv1.NetworkPolicy) (p *matcher.Policy, err error) {
	defer recovered(&err)
	return matcher.BuildNetworkPolicies(false, policies), nil
}

func judge(policy *matcher.Policy, t *matcher.Traffic) (r result, err error) {
	defer recovered(&err)
	res := policy.IsTrafficAllowed(t)
	r.Ingress = res.Ingress.IsAllowed()
	r.Egress = res.Egress.IsAllowed()
	r.Allowed = res.IsAllowed()
	r.Explanation = fmt.Sprintf("ingress: %s; egress: %s",
		explain(res.Ingress, true, t), explain(res.Egress, false, t))
	return r, nil
}

func name(p *networkingv1.NetworkPolicy) string {
	return p.Namespace + "/" + p.Name
}

// explain says which policies decided one direction. cyclonus merges the policies with the same
// namespace and pod selector into one target; to name the policies that allow, each policy of an
// allowing target is asked again on its own (cyclonus' BuildTarget, on that one policy).
func explain(d *matcher.DirectionResult, isIngress bool, t *matcher.Traffic) string {
	pod, peer := t.Source, t.Destination
	if isIngress {
		pod, peer = t.Destination, t.Source
	}
	if pod.Internal == nil {
		if isIngress {
			return "allowed (destination outside the cluster)"
		}
		return "allowed (source outside the cluster)"
	}
	if len(d.AllowingTargets) == 0 && len(d.DenyingTargets) == 0 {
		return "allowed (no policy selects the pod)"
	}
	if len(d.AllowingTargets) > 0 {
		var allowers []string
		for _, target := range d.AllowingTargets {
			for _, sr := range target.SourceRules {
				ingress, egress := matcher.BuildTarget(sr)
				own := egress
				if isIngress {
					own = ingress
				}
				if own != nil && own.Allows(peer, t.ResolvedPort, t.ResolvedPortName, t.Protocol) {
					allowers = append(allowers, name(sr))
				}
			}
		}
		sort.Strings(allowers)
		return "allowed by " + strings.Join(allowers, ", ")
	}
	var selecting []string
	for _, target := range d.DenyingTargets {
		for _, sr := range target.SourceRules {
			selecting = append(selecting, name(sr))
		}
	}
	sort.Strings(selecting)
	return fmt.Sprintf("denied: selected by %s, none allows this peer on %s/%d", strings.Join(selecting, ", "), t.Protocol, t.ResolvedPort)
}
