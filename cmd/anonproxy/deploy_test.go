package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/anonproxy/anonproxy/config"
)

// The parts of the Kubernetes objects in deploy/kubernetes.yaml that the
// test checks; unknown fields are ignored.
type k8sObject struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
	Spec       struct {
		Selector struct {
			MatchLabels map[string]string `yaml:"matchLabels"`
		} `yaml:"selector"`
		MaxUnavailable any `yaml:"maxUnavailable"`
		Template       struct {
			Metadata struct {
				Labels map[string]string `yaml:"labels"`
			} `yaml:"metadata"`
			Spec k8sPodSpec `yaml:"spec"`
		} `yaml:"template"`
	} `yaml:"spec"`
}

type k8sPodSpec struct {
	TerminationGracePeriodSeconds int `yaml:"terminationGracePeriodSeconds"`
	SecurityContext               struct {
		RunAsNonRoot bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []struct {
		Name  string   `yaml:"name"`
		Image string   `yaml:"image"`
		Args  []string `yaml:"args"`
		Ports []struct {
			Name          string `yaml:"name"`
			ContainerPort int    `yaml:"containerPort"`
		} `yaml:"ports"`
		Env []struct {
			Name      string `yaml:"name"`
			Value     string `yaml:"value"`
			ValueFrom *struct {
				SecretKeyRef *struct {
					Name string `yaml:"name"`
					Key  string `yaml:"key"`
				} `yaml:"secretKeyRef"`
				ResourceFieldRef *struct {
					Resource string `yaml:"resource"`
				} `yaml:"resourceFieldRef"`
			} `yaml:"valueFrom"`
		} `yaml:"env"`
		Resources struct {
			Requests map[string]string `yaml:"requests"`
			Limits   map[string]string `yaml:"limits"`
		} `yaml:"resources"`
		LivenessProbe  *k8sProbe `yaml:"livenessProbe"`
		ReadinessProbe *k8sProbe `yaml:"readinessProbe"`
		VolumeMounts   []struct {
			Name      string `yaml:"name"`
			MountPath string `yaml:"mountPath"`
			SubPath   string `yaml:"subPath"`
		} `yaml:"volumeMounts"`
	} `yaml:"containers"`
	Volumes []struct {
		Name      string `yaml:"name"`
		ConfigMap *struct {
			Name string `yaml:"name"`
		} `yaml:"configMap"`
		Secret *struct {
			SecretName string `yaml:"secretName"`
		} `yaml:"secret"`
	} `yaml:"volumes"`
}

type k8sProbe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

func loadManifest(t *testing.T) map[string]k8sObject {
	t.Helper()
	data, err := os.ReadFile("../../deploy/kubernetes.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs := map[string]k8sObject{}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var o k8sObject
		err := dec.Decode(&o)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("deploy/kubernetes.yaml: %v", err)
		}
		if o.Kind == "" {
			continue // an empty document
		}
		if _, dup := objs[o.Kind]; dup {
			t.Fatalf("two %s objects: the test expects one of each", o.Kind)
		}
		objs[o.Kind] = o
	}
	for _, kind := range []string{"ConfigMap", "Deployment", "PodDisruptionBudget"} {
		if _, ok := objs[kind]; !ok {
			t.Fatalf("deploy/kubernetes.yaml has no %s", kind)
		}
	}
	return objs
}

// TestKubernetesManifest keeps deploy/kubernetes.yaml from rotting: the
// probes hit the health endpoints on the -http port, the ConfigMap is a
// valid config, secrets come from Secrets, and the PDB covers the pods.
func TestKubernetesManifest(t *testing.T) {
	objs := loadManifest(t)
	dep := objs["Deployment"]
	pod := dep.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("%d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]

	// Args are a valid "anonproxy run" command line.
	if len(c.Args) == 0 || c.Args[0] != "run" {
		t.Fatalf("args %q: want the run command", c.Args)
	}
	fs := newFlags("run", "", io.Discard)
	cfgPath := fs.String("config", "", "")
	httpAddr := fs.String("http", "", "")
	drain := fs.Duration("drain-timeout", 30*time.Second, "")
	if err := fs.Parse(c.Args[1:]); err != nil || fs.NArg() > 0 {
		t.Fatalf("args %q do not parse as run's flags: %v", c.Args, err)
	}
	var rs bytes.Buffer
	if code := dispatch([]string{"run", "-h"}, strings.NewReader(""), io.Discard, &rs); code != exitOK {
		t.Fatalf("run -h: %d", code)
	}
	for _, f := range []string{"-config", "-http", "-drain-timeout"} {
		if !strings.Contains(rs.String(), f) {
			t.Errorf("the manifest uses %s, which anonproxy run no longer has", f)
		}
	}

	// Probes: liveness /healthz, readiness /readyz, on the port -http listens on (all interfaces).
	port := 0
	for _, p := range c.Ports {
		port = p.ContainerPort
		if !strings.HasSuffix(*httpAddr, ":"+strconv.Itoa(port)) || !strings.HasPrefix(*httpAddr, "0.0.0.0:") {
			t.Errorf("-http %q does not listen on all interfaces at the container port %d", *httpAddr, port)
		}
		for name, pr := range map[string]*k8sProbe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if pr == nil {
				t.Errorf("no %s probe", name)
				continue
			}
			if pr.HTTPGet.Port != p.Name && pr.HTTPGet.Port != port {
				t.Errorf("%s probe on port %v, want %s/%d", name, pr.HTTPGet.Port, p.Name, port)
			}
		}
	}
	if port == 0 {
		t.Error("no container port")
	}
	if c.LivenessProbe != nil && c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe path %q, want /healthz", c.LivenessProbe.HTTPGet.Path)
	}
	if c.ReadinessProbe != nil && c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe path %q, want /readyz", c.ReadinessProbe.HTTPGet.Path)
	}

	// The grace period covers the drain.
	if g := time.Duration(pod.TerminationGracePeriodSeconds) * time.Second; g <= *drain {
		t.Errorf("terminationGracePeriodSeconds %s does not cover -drain-timeout %s", g, *drain)
	}
	for _, m := range []map[string]string{c.Resources.Requests, c.Resources.Limits} {
		if m["cpu"] == "" || m["memory"] == "" {
			t.Errorf("resources without cpu or memory: %v", c.Resources)
		}
	}
	if !pod.SecurityContext.RunAsNonRoot {
		t.Error("pod may run as root")
	}

	// The config file is the ConfigMap's, and it loads.
	mounts := map[string]string{} // mount path -> volume
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m.Name
	}
	vols := map[string]int{}
	for i, v := range pod.Volumes {
		vols[v.Name] = i
	}
	cm := objs["ConfigMap"]
	vi, ok := vols[mounts[*cfgPath]]
	if !ok || pod.Volumes[vi].ConfigMap == nil || pod.Volumes[vi].ConfigMap.Name != cm.Metadata.Name {
		t.Fatalf("-config %s is not mounted from ConfigMap %s", *cfgPath, cm.Metadata.Name)
	}
	var cfgText string
	for _, m := range c.VolumeMounts {
		if m.MountPath == *cfgPath {
			cfgText = cm.Data[m.SubPath]
		}
	}
	cfg, err := config.Parse([]byte(cfgText))
	if err != nil {
		t.Fatalf("the ConfigMap's config does not load: %v", err)
	}
	if len(cfg.Streams) != 3 {
		t.Errorf("%d streams, want the reference config's 3", len(cfg.Streams))
	}

	// Secrets: none inline. The HMAC key is a file from a Secret volume; the
	// SASL password an environment variable from a Secret.
	if _, ok := objs["Secret"]; ok {
		t.Error("the manifest holds a Secret: create secrets out of band")
	}
	secretName := regexp.MustCompile(`(?i)(PASSWORD|SECRET|TOKEN|HMAC_KEY$|_KEY$)`)
	env := map[string]string{}
	for _, e := range c.Env {
		env[e.Name] = e.Value
		if secretName.MatchString(e.Name) && (e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil) {
			t.Errorf("env %s is set inline: take it from a Secret", e.Name)
		}
	}
	keyFile := env["ANONPROXY_HMAC_KEY_FILE"]
	if keyFile == "" {
		t.Error("ANONPROXY_HMAC_KEY_FILE is not set")
	}
	fromSecret := false
	for path, vol := range mounts {
		if i, ok := vols[vol]; ok && pod.Volumes[i].Secret != nil && strings.HasPrefix(keyFile, strings.TrimSuffix(path, "/")+"/") {
			fromSecret = true
		}
	}
	if !fromSecret {
		t.Errorf("ANONPROXY_HMAC_KEY_FILE %s is not in a mounted Secret", keyFile)
	}
	if cfg.Kafka.SASL.Mechanism != "" {
		name := cfg.Kafka.SASL.PasswordEnv
		if name == "" {
			name = "ANONPROXY_SASL_PASSWORD"
		}
		found := false
		for _, e := range c.Env {
			found = found || (e.Name == name && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil)
		}
		if !found && cfg.Kafka.SASL.PasswordFile == "" {
			t.Errorf("SASL password env %s is not taken from a Secret", name)
		}
	}
	if strings.Contains(strings.ToLower(cfgText), "password:") {
		t.Error("the ConfigMap mentions a password")
	}

	// The PDB and the Deployment select the same pods.
	pdb := objs["PodDisruptionBudget"]
	if len(pdb.Spec.Selector.MatchLabels) == 0 || pdb.Spec.MaxUnavailable == nil {
		t.Errorf("PDB without selector or maxUnavailable: %+v", pdb.Spec)
	}
	for k, v := range pdb.Spec.Selector.MatchLabels {
		if dep.Spec.Template.Metadata.Labels[k] != v {
			t.Errorf("PDB selects %s=%s, which the pods do not carry", k, v)
		}
	}
}

// TestDockerfile checks the image's essentials: a static build, a non-root
// user, the binary as entrypoint.
func TestDockerfile(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	d := string(b)
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/anonproxy", `ENTRYPOINT ["/anonproxy"]`, "FROM gcr.io/distroless/static", "USER 65532"} {
		if !strings.Contains(d, want) {
			t.Errorf("deploy/Dockerfile lacks %q", want)
		}
	}
	if strings.Contains(d, "USER root") || strings.Contains(d, "USER 0") {
		t.Error("deploy/Dockerfile runs as root")
	}
}
