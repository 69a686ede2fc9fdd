// Package deploy holds the deployment files (compose.yaml, k8s/, Dockerfile) and the local
// launcher. There is no Docker engine or cluster on the build machines, so these tests load the
// files with the libraries the real tools use and check what would otherwise only fail in
// production: compose.yaml is loaded and validated against the Compose schema by compose-go (as
// `docker compose` does); k8s/ is built by kustomize (as `kubectl apply -k` does) and every object
// is decoded strictly into the Kubernetes API types, so an unknown or misspelt field fails; then
// the settings that must agree with the binaries (ports, probes, addresses) are compared.
package deploy

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"flashedge/deploy/internal/launch"
)

const (
	serviceImage  = "flashedge:latest"
	dragonflyRepo = "docker.dragonflydb.io/dragonflydb/dragonfly:"
)

// loadCompose loads a compose file the way `docker compose` does: schema validation,
// interpolation (with the two required secrets set), merges of the x- anchors, normalization.
func loadCompose(t *testing.T, path string) (*types.Project, error) {
	t.Helper()
	opts, err := cli.NewProjectOptions([]string{path},
		cli.WithEnv([]string{"FLASHEDGE_ADMIN_TOKEN=test-admin-token-0123", "FLASHEDGE_SESSION_SECRET=test-session-secret-0123456789abcdef"}),
		cli.WithDiscardEnvFile,
		cli.WithConsistency(true),
	)
	if err != nil {
		t.Fatal(err)
	}
	return cli.ProjectFromOptions(context.Background(), opts)
}

func TestCompose(t *testing.T) {
	p, err := loadCompose(t, "compose.yaml")
	if err != nil {
		t.Fatalf("compose-go rejects compose.yaml: %v", err)
	}
	ports := launch.DefaultPorts()

	store, err := p.GetService("store")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(store.Image, dragonflyRepo) {
		t.Errorf("store image %q, want %s<version>", store.Image, dragonflyRepo)
	}
	if store.Restart != types.RestartPolicyAlways || store.HealthCheck == nil || !slices.Contains(store.HealthCheck.Test, "ping") {
		t.Errorf("store: restart %q healthcheck %+v: want always and a PING check", store.Restart, store.HealthCheck)
	}
	if cmd := strings.Join(store.Command, " "); !strings.Contains(cmd, "--snapshot_cron=") || !strings.Contains(cmd, "--dir=/data") {
		t.Errorf("store command %q: want snapshots into /data", cmd)
	}
	if len(store.Volumes) != 1 || store.Volumes[0].Target != "/data" || store.Volumes[0].Type != types.VolumeTypeVolume {
		t.Errorf("store volumes %+v: want a named volume on /data", store.Volumes)
	}

	for _, svc := range launch.Services() {
		t.Run(svc, func(t *testing.T) {
			s, err := p.GetService(svc)
			if err != nil {
				t.Fatal(err)
			}
			port := strconv.Itoa(ports[svc])
			if s.Image != serviceImage || s.Build == nil || s.Build.Dockerfile != "deploy/Dockerfile" {
				t.Errorf("image %q build %+v", s.Image, s.Build)
			}
			if s.Restart != types.RestartPolicyAlways {
				t.Errorf("restart %q, want always", s.Restart)
			}
			if !slices.Equal(s.Command, types.ShellCommand{"/usr/local/bin/" + svc}) {
				t.Errorf("command %v", s.Command)
			}
			hc := s.HealthCheck
			if hc == nil || !slices.Contains(hc.Test, "http://127.0.0.1:"+port+"/ready") || !slices.Contains(hc.Test, "/usr/local/bin/probe") {
				t.Fatalf("healthcheck %+v, want the probe of http://127.0.0.1:%s/ready", hc, port)
			}
			if hc.Interval == nil || *hc.Interval <= 0 {
				t.Errorf("healthcheck has no interval (the merged x-health anchor is missing)")
			}
			if dep, ok := s.DependsOn["store"]; !ok || dep.Condition != types.ServiceConditionHealthy {
				t.Errorf("depends_on store %+v, want condition service_healthy", s.DependsOn)
			}
			want := map[string]string{
				"FLASHEDGE_" + strings.ToUpper(svc) + "_LISTEN": "0.0.0.0:" + port,
				"FLASHEDGE_STORE_ADDR":                          "store:6379",
				"FLASHEDGE_CATALOG_ADDRS":                       "catalog:" + strconv.Itoa(ports["catalog"]),
				"FLASHEDGE_CART_ADDRS":                          "cart:" + strconv.Itoa(ports["cart"]),
				"FLASHEDGE_ORDER_ADDRS":                         "order:" + strconv.Itoa(ports["order"]),
				"FLASHEDGE_ADMIN_TOKEN":                         "test-admin-token-0123", // interpolated from the shell
			}
			for k, v := range want {
				if got := s.Environment[k]; got == nil || *got != v {
					t.Errorf("environment %s=%v, want %q", k, got, v)
				}
			}
			var published []string
			for _, pc := range s.Ports {
				published = append(published, pc.Published+":"+strconv.Itoa(int(pc.Target)))
			}
			if svc == "edge" && !slices.Equal(published, []string{port + ":" + port}) {
				t.Errorf("edge publishes %v, want %s:%s", published, port, port)
			}
			if svc != "edge" && len(published) > 0 {
				t.Errorf("%s publishes %v: only the edge is public", svc, published)
			}
		})
	}
}

// TestComposeRequiresSecrets: without the two secrets in the shell, loading fails (the
// ${VAR:?message} form), instead of starting services with empty secrets.
func TestComposeRequiresSecrets(t *testing.T) {
	opts, err := cli.NewProjectOptions([]string{"compose.yaml"}, cli.WithEnv([]string{}), cli.WithDiscardEnvFile)
	if err != nil {
		t.Fatal(err)
	}
	_, err = cli.ProjectFromOptions(context.Background(), opts)
	if err == nil || !strings.Contains(err.Error(), "FLASHEDGE_ADMIN_TOKEN") {
		t.Errorf("loading without secrets: %v, want an error naming FLASHEDGE_ADMIN_TOKEN", err)
	}
}

// TestComposeSchemaCatches proves the loader refuses what a hand-walked map would not notice.
func TestComposeSchemaCatches(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"misspelt key", "services:\n  a:\n    image: x\n    restrat: always\n"},
		{"wrong type", "services:\n  a:\n    image: x\n    healthcheck:\n      retries: many\n"},
		{"unknown dependency", "services:\n  a:\n    image: x\n    depends_on: [b]\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := t.TempDir() + "/compose.yaml"
			if err := os.WriteFile(path, []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := loadCompose(t, path); err == nil {
				t.Errorf("compose-go accepted %q", tt.yaml)
			}
		})
	}
}

// object is one Kubernetes object built by kustomize and decoded into its API type.
type object struct {
	kind, name, namespace string
	obj                   runtime.Object
}

// build runs kustomize on dir and decodes every object strictly into the k8s.io/api types: an
// unknown field, a misspelt one or a wrong type is an error.
func build(dir string) (map[string]object, error) {
	fs := filesys.MakeFsOnDisk()
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(fs, dir)
	if err != nil {
		return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, batchv1.AddToScheme,
		autoscalingv2.AddToScheme, policyv1.AddToScheme, networkingv1.AddToScheme} {
		if err := add(scheme); err != nil {
			return nil, err
		}
	}
	dec := serializer.NewCodecFactory(scheme, serializer.EnableStrict).UniversalDeserializer()
	objs := map[string]object{}
	for _, r := range rm.Resources() {
		y, err := r.AsYAML()
		if err != nil {
			return nil, err
		}
		obj, gvk, err := dec.Decode(y, nil, nil)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", r.GetKind(), r.GetName(), err)
		}
		key := gvk.Kind + "/" + r.GetName()
		if _, dup := objs[key]; dup {
			return nil, fmt.Errorf("%s defined twice", key)
		}
		objs[key] = object{kind: gvk.Kind, name: r.GetName(), namespace: r.GetNamespace(), obj: obj}
	}
	return objs, nil
}

// TestKubernetesStrictDecodeCatches proves the strict decoding fails on a misspelt field and on
// a field of the wrong type, which kubectl would also refuse.
func TestKubernetesStrictDecodeCatches(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"misspelt field", "apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec:\n  selectr: {a: b}\n"},
		{"wrong type", "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec:\n  replicas: two\n"},
		{"unknown kind", "apiVersion: v1\nkind: Servce\nmetadata: {name: s}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(dir+"/kustomization.yaml", []byte("resources: [x.yaml]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(dir+"/x.yaml", []byte(tt.yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			if _, err := build(dir); err == nil {
				t.Errorf("accepted %q", tt.yaml)
			}
		})
	}
}

func get[T runtime.Object](t *testing.T, objs map[string]object, kind, name string) T {
	t.Helper()
	o, ok := objs[kind+"/"+name]
	if !ok {
		t.Fatalf("no %s/%s", kind, name)
	}
	v, ok := o.obj.(T)
	if !ok {
		t.Fatalf("%s/%s decoded as %T", kind, name, o.obj)
	}
	return v
}

func TestKubernetes(t *testing.T) {
	objs, err := build("k8s")
	if err != nil {
		t.Fatal(err)
	}
	for key, o := range objs {
		if o.kind != "Namespace" && o.namespace != "flashedge" {
			t.Errorf("%s: namespace %q, want flashedge", key, o.namespace)
		}
	}
	// Every manifest is listed in the kustomization (an unlisted file would never be applied).
	files, _ := os.ReadDir("k8s")
	kust, _ := os.ReadFile("k8s/kustomization.yaml")
	for _, f := range files {
		if n := f.Name(); strings.HasSuffix(n, ".yaml") && n != "kustomization.yaml" && !strings.Contains(string(kust), "- "+n+"\n") {
			t.Errorf("kustomization.yaml does not list %s", n)
		}
	}

	cm := get[*corev1.ConfigMap](t, objs, "ConfigMap", "flashedge-config")
	secret := get[*corev1.Secret](t, objs, "Secret", "flashedge-secrets")
	ports := launch.DefaultPorts()
	storeAddrs := make([]string, 6)
	for i := range storeAddrs {
		storeAddrs[i] = fmt.Sprintf("store-%d.store:6379", i)
	}
	for k, v := range map[string]string{
		"FLASHEDGE_STORE_ADDR":    strings.Join(storeAddrs, ","),
		"FLASHEDGE_STORE_CLUSTER": "true",
		"FLASHEDGE_CATALOG_ADDRS": "catalog:" + strconv.Itoa(ports["catalog"]),
		"FLASHEDGE_CART_ADDRS":    "cart:" + strconv.Itoa(ports["cart"]),
		"FLASHEDGE_ORDER_ADDRS":   "order:" + strconv.Itoa(ports["order"]),
	} {
		if got := cm.Data[k]; got != v {
			t.Errorf("ConfigMap %s=%q, want %q", k, got, v)
		}
	}
	if len(secret.StringData["FLASHEDGE_ADMIN_TOKEN"]) < 16 || len(secret.StringData["FLASHEDGE_SESSION_SECRET"]) < 32 {
		t.Errorf("Secret: want FLASHEDGE_ADMIN_TOKEN (>= 16 chars) and FLASHEDGE_SESSION_SECRET (>= 32) placeholders")
	}

	// Shoppers' addresses reach the edge (per-address limits), and its ops port stays internal.
	edgeSvc := get[*corev1.Service](t, objs, "Service", "edge")
	if edgeSvc.Spec.ExternalTrafficPolicy != corev1.ServiceExternalTrafficPolicyLocal {
		t.Errorf("Service/edge: externalTrafficPolicy %q, want Local (or the PROXY protocol, documented there)", edgeSvc.Spec.ExternalTrafficPolicy)
	}
	for _, sp := range edgeSvc.Spec.Ports {
		if int(sp.Port) == launch.DefaultOpsPort {
			t.Errorf("Service/edge exposes the ops port %d", sp.Port)
		}
	}
	edgeC := get[*appsv1.Deployment](t, objs, "Deployment", "edge").Spec.Template.Spec.Containers[0]
	if e := envVar(edgeC, "FLASHEDGE_EDGE_OPS_LISTEN"); e == nil || e.Value != "0.0.0.0:"+strconv.Itoa(launch.DefaultOpsPort) {
		t.Errorf("Deployment/edge: FLASHEDGE_EDGE_OPS_LISTEN %+v, want 0.0.0.0:%d", e, launch.DefaultOpsPort)
	}

	t.Run("store", func(t *testing.T) { checkStore(t, objs) })
	for _, svc := range launch.Services() {
		t.Run(svc, func(t *testing.T) { checkService(t, objs, svc, ports[svc]) })
	}
	for _, svc := range []string{"edge", "worker"} {
		hpa := get[*autoscalingv2.HorizontalPodAutoscaler](t, objs, "HorizontalPodAutoscaler", svc)
		ref := hpa.Spec.ScaleTargetRef
		if ref.Kind != "Deployment" || ref.Name != svc || hpa.Spec.MinReplicas == nil || *hpa.Spec.MinReplicas < 2 ||
			hpa.Spec.MaxReplicas <= *hpa.Spec.MinReplicas || len(hpa.Spec.Metrics) == 0 {
			t.Errorf("HorizontalPodAutoscaler/%s: target %+v min %v max %d metrics %d", svc, ref, hpa.Spec.MinReplicas, hpa.Spec.MaxReplicas, len(hpa.Spec.Metrics))
		}
	}
	// The worker leaves the group under its pod name: the consumer name must be unique per pod.
	w := get[*appsv1.Deployment](t, objs, "Deployment", "worker").Spec.Template.Spec.Containers[0]
	if e := envVar(w, "FLASHEDGE_WORKER_CONSUMER"); e == nil || e.ValueFrom == nil || e.ValueFrom.FieldRef == nil || e.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		t.Errorf("worker: FLASHEDGE_WORKER_CONSUMER %+v, want the pod name", e)
	}
}

func envVar(c corev1.Container, name string) *corev1.EnvVar {
	for i := range c.Env {
		if c.Env[i].Name == name {
			return &c.Env[i]
		}
	}
	return nil
}

// checkStore: a Redis Cluster of 3 primaries + 3 replicas that survives a node: one pod per node,
// a PDB allowing one voluntary eviction at a time, a volume per pod, probes, and a Job forming
// the cluster with one replica per primary.
func checkStore(t *testing.T, objs map[string]object) {
	ss := get[*appsv1.StatefulSet](t, objs, "StatefulSet", "store")
	if ss.Spec.Replicas == nil || *ss.Spec.Replicas != 6 || ss.Spec.ServiceName != "store" {
		t.Errorf("StatefulSet/store: replicas %v service %q, want 6 and store", ss.Spec.Replicas, ss.Spec.ServiceName)
	}
	pod := ss.Spec.Template.Spec
	aff := pod.Affinity
	if aff == nil || aff.PodAntiAffinity == nil || len(aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution) == 0 ||
		aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution[0].TopologyKey != "kubernetes.io/hostname" {
		t.Errorf("StatefulSet/store: want a required pod anti-affinity per node, so one node holds one copy")
	}
	c := pod.Containers[0]
	args := strings.Join(c.Args, " ")
	for _, want := range []string{"--cluster-enabled yes", "--appendonly yes", "--dir /data", "--cluster-preferred-endpoint-type hostname"} {
		if !strings.Contains(args, want) {
			t.Errorf("store args %q lack %q", args, want)
		}
	}
	if c.ReadinessProbe == nil || c.LivenessProbe == nil || c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("store container: want probes, a CPU request and a memory limit")
	}
	if len(ss.Spec.VolumeClaimTemplates) != 1 || len(c.VolumeMounts) != 1 || c.VolumeMounts[0].MountPath != "/data" {
		t.Errorf("StatefulSet/store: want a volume claim mounted on /data")
	}
	svc := get[*corev1.Service](t, objs, "Service", "store")
	if svc.Spec.ClusterIP != corev1.ClusterIPNone || len(svc.Spec.Ports) != 2 || svc.Spec.Ports[0].Port != 6379 || svc.Spec.Ports[1].Port != 16379 {
		t.Errorf("Service/store: want headless with 6379 and the bus 16379, got %+v", svc.Spec.Ports)
	}
	job := get[*batchv1.Job](t, objs, "Job", "store-cluster-create")
	script := strings.Join(job.Spec.Template.Spec.Containers[0].Args, " ")
	if !strings.Contains(script, "--cluster create") || !strings.Contains(script, "--cluster-replicas 1") {
		t.Errorf("Job/store-cluster-create: want redis-cli --cluster create ... --cluster-replicas 1")
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", "store")
	if pdb.Spec.MaxUnavailable == nil || pdb.Spec.MaxUnavailable.IntValue() != 1 {
		t.Errorf("PodDisruptionBudget/store: maxUnavailable %v, want 1", pdb.Spec.MaxUnavailable)
	}
}

func checkService(t *testing.T, objs map[string]object, svc string, port int) {
	dep := get[*appsv1.Deployment](t, objs, "Deployment", svc)
	pod := dep.Spec.Template.Spec
	c := pod.Containers[0]
	if c.Image != serviceImage || !slices.Equal(c.Command, []string{"/usr/local/bin/" + svc}) {
		t.Errorf("image %q command %v", c.Image, c.Command)
	}
	if len(c.Ports) == 0 || int(c.Ports[0].ContainerPort) != port {
		t.Errorf("container ports %+v, want %d", c.Ports, port)
	}
	for name, pr := range map[string]*corev1.Probe{"/ready": c.ReadinessProbe, "/health": c.LivenessProbe} {
		if pr == nil || pr.HTTPGet == nil || pr.HTTPGet.Path != name || pr.HTTPGet.Port.IntValue() != port {
			t.Errorf("probe of %s: %+v, want GET %s on %d", name, pr, name, port)
		}
	}
	if e := envVar(c, "FLASHEDGE_"+strings.ToUpper(svc)+"_LISTEN"); e == nil || e.Value != "0.0.0.0:"+strconv.Itoa(port) {
		t.Errorf("listen env %+v, want 0.0.0.0:%d", e, port)
	}
	if envVar(c, "FLASHEDGE_INSTANCE") != nil {
		t.Errorf("FLASHEDGE_INSTANCE is read by no binary")
	}
	if len(c.EnvFrom) != 2 || c.EnvFrom[0].ConfigMapRef == nil || c.EnvFrom[0].ConfigMapRef.Name != "flashedge-config" ||
		c.EnvFrom[1].SecretRef == nil || c.EnvFrom[1].SecretRef.Name != "flashedge-secrets" {
		t.Errorf("envFrom %+v: want the ConfigMap and the Secret", c.EnvFrom)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v: want CPU and memory requests and a memory limit", c.Resources)
	}
	if dep.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != svc || dep.Spec.Template.Labels["app.kubernetes.io/name"] != svc {
		t.Errorf("selector and pod labels must carry app.kubernetes.io/name=%s", svc)
	}
	pdb := get[*policyv1.PodDisruptionBudget](t, objs, "PodDisruptionBudget", svc)
	if pdb.Spec.MinAvailable == nil || pdb.Spec.MinAvailable.IntValue() < 1 || pdb.Spec.Selector.MatchLabels["app.kubernetes.io/name"] != svc {
		t.Errorf("PodDisruptionBudget/%s: %+v, want minAvailable >= 1 on its pods", svc, pdb.Spec)
	}

	s, ok := objs["Service/"+svc]
	if svc == "worker" {
		if ok {
			t.Errorf("Service/worker: the worker takes no traffic")
		}
		return
	}
	if !ok {
		t.Fatalf("no Service/%s", svc)
	}
	sv := s.obj.(*corev1.Service)
	if len(sv.Spec.Ports) == 0 || int(sv.Spec.Ports[0].Port) != port || sv.Spec.Selector["app.kubernetes.io/name"] != svc {
		t.Errorf("Service/%s: ports %+v selector %v, want %d and app.kubernetes.io/name=%s", svc, sv.Spec.Ports, sv.Spec.Selector, port, svc)
	}
}

func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	mod, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	goVersion := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindStringSubmatch(string(mod))
	if goVersion == nil {
		t.Fatal("no go line in go.mod")
	}
	for _, want := range []string{
		"FROM golang:" + goVersion[1] + "-bookworm AS build",
		"./edge/cmd/... ./backend/cmd/... ./deploy/cmd/probe",
		"CGO_ENABLED=0",
		"FROM gcr.io/distroless/static-debian12:nonroot",
		"COPY --from=build /out/ /usr/local/bin/",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
}
