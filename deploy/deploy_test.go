// Package deploy holds the deployment files (compose.yaml, k8s/, Dockerfile) and the local
// launcher. There is no Docker engine or cluster on the build machines, so these tests parse the
// files and check what would otherwise only fail in production: every service has health checks
// on the right port, images are named, ports match the defaults the binaries and launcher use.
package deploy

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"flashedge/deploy/internal/launch"
)

const (
	serviceImage  = "flashedge:latest"
	dragonflyRepo = "docker.dragonflydb.io/dragonflydb/dragonfly:"
)

// readDocs decodes every YAML document of a file.
func readDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var docs []map[string]any
	dec := yaml.NewDecoder(f)
	for {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if doc != nil {
			docs = append(docs, doc)
		}
	}
}

// at walks maps (string keys) and lists (int indexes); it returns nil when the path is absent.
func at(v any, path ...any) any {
	for _, p := range path {
		switch k := p.(type) {
		case string:
			m, ok := v.(map[string]any)
			if !ok {
				return nil
			}
			v = m[k]
		case int:
			l, ok := v.([]any)
			if !ok || k >= len(l) {
				return nil
			}
			v = l[k]
		}
	}
	return v
}

func str(v any, path ...any) string {
	s, _ := at(v, path...).(string)
	return s
}

func num(v any, path ...any) int {
	switch n := at(v, path...).(type) {
	case int:
		return n
	case string:
		i, _ := strconv.Atoi(n)
		return i
	}
	return 0
}

func strs(v any, path ...any) []string {
	var out []string
	l, _ := at(v, path...).([]any)
	for _, x := range l {
		out = append(out, fmt.Sprint(x))
	}
	return out
}

func TestCompose(t *testing.T) {
	docs := readDocs(t, "compose.yaml")
	if len(docs) != 1 {
		t.Fatalf("compose.yaml: %d documents, want 1", len(docs))
	}
	services, _ := at(docs[0], "services").(map[string]any)
	ports := launch.DefaultPorts()

	store := services["store"]
	if img := str(store, "image"); !strings.HasPrefix(img, dragonflyRepo) {
		t.Errorf("store image %q, want %s<version>", img, dragonflyRepo)
	}
	if str(store, "restart") != "always" || !slices.Contains(strs(store, "healthcheck", "test"), "ping") {
		t.Errorf("store: restart %q healthcheck %v: want always and a PING check", str(store, "restart"), strs(store, "healthcheck", "test"))
	}
	if cmd := strings.Join(strs(store, "command"), " "); !strings.Contains(cmd, "--snapshot_cron=") || !strings.Contains(cmd, "--dir=/data") {
		t.Errorf("store command %q: want snapshots into /data", cmd)
	}
	if vols := strs(store, "volumes"); len(vols) != 1 || !strings.HasSuffix(vols[0], ":/data") {
		t.Errorf("store volumes %v: want a volume on /data", vols)
	}

	for _, svc := range launch.Services() {
		t.Run(svc, func(t *testing.T) {
			s := services[svc]
			if s == nil {
				t.Fatalf("no service %q", svc)
			}
			port := strconv.Itoa(ports[svc])
			if str(s, "image") != serviceImage || str(s, "build", "dockerfile") != "deploy/Dockerfile" {
				t.Errorf("image %q dockerfile %q", str(s, "image"), str(s, "build", "dockerfile"))
			}
			if str(s, "restart") != "always" {
				t.Errorf("restart %q, want always", str(s, "restart"))
			}
			if got := strs(s, "command"); !slices.Equal(got, []string{"/usr/local/bin/" + svc}) {
				t.Errorf("command %v", got)
			}
			hc := strs(s, "healthcheck", "test")
			if want := "http://127.0.0.1:" + port + "/ready"; !slices.Contains(hc, want) || !slices.Contains(hc, "/usr/local/bin/probe") {
				t.Errorf("healthcheck %v, want probe of %s", hc, want)
			}
			if str(s, "healthcheck", "interval") == "" {
				t.Errorf("healthcheck has no interval (the merged x-health anchor is missing)")
			}
			if cond := str(s, "depends_on", "store", "condition"); cond != "service_healthy" {
				t.Errorf("depends_on store condition %q, want service_healthy", cond)
			}
			env := at(s, "environment")
			want := map[string]string{
				"FLASHEDGE_" + strings.ToUpper(svc) + "_LISTEN": "0.0.0.0:" + port,
				"FLASHEDGE_STORE_ADDR":                          "store:6379",
				"FLASHEDGE_CATALOG_ADDRS":                       "catalog:" + strconv.Itoa(ports["catalog"]),
				"FLASHEDGE_CART_ADDRS":                          "cart:" + strconv.Itoa(ports["cart"]),
				"FLASHEDGE_ORDER_ADDRS":                         "order:" + strconv.Itoa(ports["order"]),
			}
			for k, v := range want {
				if got := str(env, k); got != v {
					t.Errorf("environment %s=%q, want %q", k, got, v)
				}
			}
			for _, k := range []string{"FLASHEDGE_ADMIN_TOKEN", "FLASHEDGE_SESSION_SECRET"} {
				if !strings.HasPrefix(str(env, k), "${"+k+":?") {
					t.Errorf("environment %s=%q: want it required from the shell (${%s:?...})", k, str(env, k), k)
				}
			}
			published := strs(s, "ports")
			if svc == "edge" && !slices.Equal(published, []string{port + ":" + port}) {
				t.Errorf("edge publishes %v, want %s:%s", published, port, port)
			}
			if svc != "edge" && len(published) > 0 {
				t.Errorf("%s publishes %v: only the edge is public", svc, published)
			}
		})
	}
}

func TestKubernetes(t *testing.T) {
	files, err := filepath.Glob("k8s/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no k8s/*.yaml: %v", err)
	}
	objs := map[string]map[string]any{} // "Kind/name"
	var kustomize map[string]any
	for _, f := range files {
		for _, d := range readDocs(t, f) {
			kind, name := str(d, "kind"), str(d, "metadata", "name")
			if kind == "Kustomization" {
				kustomize = d
				continue
			}
			if kind == "" || name == "" || str(d, "apiVersion") == "" {
				t.Errorf("%s: a document without apiVersion, kind or metadata.name", f)
				continue
			}
			if ns := str(d, "metadata", "namespace"); kind != "Namespace" && ns != "flashedge" {
				t.Errorf("%s %s/%s: namespace %q, want flashedge", f, kind, name, ns)
			}
			key := kind + "/" + name
			if objs[key] != nil {
				t.Errorf("%s defined twice", key)
			}
			objs[key] = d
		}
	}

	// kustomization.yaml lists every other manifest.
	var listed []string
	for _, r := range strs(kustomize, "resources") {
		listed = append(listed, "k8s/"+r)
	}
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" && !slices.Contains(listed, f) {
			t.Errorf("kustomization.yaml does not list %s", f)
		}
	}

	cm, secret := objs["ConfigMap/flashedge-config"], objs["Secret/flashedge-secrets"]
	if cm == nil || secret == nil {
		t.Fatalf("want ConfigMap/flashedge-config and Secret/flashedge-secrets")
	}
	ports := launch.DefaultPorts()
	for k, v := range map[string]string{
		"FLASHEDGE_STORE_ADDR":    "dragonfly:6379",
		"FLASHEDGE_CATALOG_ADDRS": "catalog:" + strconv.Itoa(ports["catalog"]),
		"FLASHEDGE_CART_ADDRS":    "cart:" + strconv.Itoa(ports["cart"]),
		"FLASHEDGE_ORDER_ADDRS":   "order:" + strconv.Itoa(ports["order"]),
	} {
		if got := str(cm, "data", k); got != v {
			t.Errorf("ConfigMap %s=%q, want %q", k, got, v)
		}
	}
	if len(str(secret, "stringData", "FLASHEDGE_ADMIN_TOKEN")) < 16 || len(str(secret, "stringData", "FLASHEDGE_SESSION_SECRET")) < 32 {
		t.Errorf("Secret: want FLASHEDGE_ADMIN_TOKEN (>= 16 chars) and FLASHEDGE_SESSION_SECRET (>= 32) placeholders")
	}

	df := objs["StatefulSet/dragonfly"]
	dfc := at(df, "spec", "template", "spec", "containers", 0)
	if !strings.HasPrefix(str(dfc, "image"), dragonflyRepo) || at(dfc, "readinessProbe") == nil || at(dfc, "livenessProbe") == nil {
		t.Errorf("StatefulSet/dragonfly: image %q, want %s<version> with readiness and liveness probes", str(dfc, "image"), dragonflyRepo)
	}
	if at(df, "spec", "volumeClaimTemplates", 0) == nil || str(dfc, "volumeMounts", 0, "mountPath") != "/data" {
		t.Errorf("StatefulSet/dragonfly: want a volume claim mounted on /data")
	}
	if num(objs["Service/dragonfly"], "spec", "ports", 0, "port") != 6379 {
		t.Errorf("Service/dragonfly: want port 6379")
	}

	// Shoppers' addresses reach the edge (per-address limits), and its ops port stays internal.
	if got := str(objs["Service/edge"], "spec", "externalTrafficPolicy"); got != "Local" {
		t.Errorf("Service/edge: externalTrafficPolicy %q, want Local (or the PROXY protocol, documented there)", got)
	}
	for i := range len(strs(objs["Service/edge"], "spec", "ports")) {
		if port := num(objs["Service/edge"], "spec", "ports", i, "port"); port == launch.DefaultOpsPort {
			t.Errorf("Service/edge exposes the ops port %d", port)
		}
	}
	edgeC := at(objs["Deployment/edge"], "spec", "template", "spec", "containers", 0)
	opsListen := ""
	for i := range len(strs(edgeC, "env")) {
		if str(edgeC, "env", i, "name") == "FLASHEDGE_EDGE_OPS_LISTEN" {
			opsListen = str(edgeC, "env", i, "value")
		}
	}
	if opsListen != "0.0.0.0:"+strconv.Itoa(launch.DefaultOpsPort) {
		t.Errorf("Deployment/edge: FLASHEDGE_EDGE_OPS_LISTEN %q, want 0.0.0.0:%d", opsListen, launch.DefaultOpsPort)
	}

	for _, svc := range launch.Services() {
		t.Run(svc, func(t *testing.T) {
			dep := objs["Deployment/"+svc]
			if dep == nil {
				t.Fatalf("no Deployment/%s", svc)
			}
			port := ports[svc]
			c := at(dep, "spec", "template", "spec", "containers", 0)
			if str(c, "image") != serviceImage || !slices.Equal(strs(c, "command"), []string{"/usr/local/bin/" + svc}) {
				t.Errorf("image %q command %v", str(c, "image"), strs(c, "command"))
			}
			if got := num(c, "ports", 0, "containerPort"); got != port {
				t.Errorf("containerPort %d, want %d", got, port)
			}
			for probe, path := range map[string]string{"readinessProbe": "/ready", "livenessProbe": "/health"} {
				if p, pp := str(c, probe, "httpGet", "path"), num(c, probe, "httpGet", "port"); p != path || pp != port {
					t.Errorf("%s GET %s on %d, want %s on %d", probe, p, pp, path, port)
				}
			}
			listen := ""
			for i := range len(strs(c, "env")) {
				if str(c, "env", i, "name") == "FLASHEDGE_"+strings.ToUpper(svc)+"_LISTEN" {
					listen = str(c, "env", i, "value")
				}
			}
			if listen != "0.0.0.0:"+strconv.Itoa(port) {
				t.Errorf("listen env %q, want 0.0.0.0:%d", listen, port)
			}
			if str(c, "envFrom", 0, "configMapRef", "name") != "flashedge-config" || str(c, "envFrom", 1, "secretRef", "name") != "flashedge-secrets" {
				t.Errorf("envFrom %v: want the ConfigMap and the Secret", at(c, "envFrom"))
			}
			labels := at(dep, "spec", "template", "metadata", "labels")
			if str(dep, "spec", "selector", "matchLabels", "app.kubernetes.io/name") != svc || str(labels, "app.kubernetes.io/name") != svc {
				t.Errorf("selector and pod labels must carry app.kubernetes.io/name=%s", svc)
			}

			s := objs["Service/"+svc]
			if svc == "worker" {
				if s != nil {
					t.Errorf("Service/worker: the worker takes no traffic")
				}
				return
			}
			if s == nil {
				t.Fatalf("no Service/%s", svc)
			}
			if num(s, "spec", "ports", 0, "port") != port || str(s, "spec", "selector", "app.kubernetes.io/name") != svc {
				t.Errorf("Service/%s: port %d selector %v, want %d and app.kubernetes.io/name=%s",
					svc, num(s, "spec", "ports", 0, "port"), at(s, "spec", "selector"), port, svc)
			}
		})
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
