package manifest

import (
	"fmt"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// This file ports the checks of Convox's pkg/manifest (validate.go and the
// Validate methods of service.go and config.go) for the sections the build
// keeps as written: volumeOptions, securityContext, imagePullSecrets,
// configMounts, scale (counts and autoscale), budget, and vpa. Messages are
// Convox's, word for word; each is placed at the value it is about.

// section is a mapping's fields by key, with the mapping's own node.
type section struct {
	n      *yaml.Node
	fields map[string]field
}

// section reads a raw mapping; a value that is not a mapping is reported.
func (d *decoder) section(n *yaml.Node, what string) section {
	s := section{n: n, fields: map[string]field{}}
	fs, _ := d.mapping(n, what)
	for _, f := range fs {
		s.fields[f.key] = f
	}
	return s
}

func (s section) has(key string) bool {
	f, ok := s.fields[key]
	return ok && !isNull(f.v)
}

// at is where key's value is, or the mapping when key is absent.
func (d *decoder) within(s section, key string) Position {
	if f, ok := s.fields[key]; ok {
		return d.at(f.v)
	}
	return d.at(s.n)
}

// valueOr is where key's value is, or at when key is absent.
func (d *decoder) valueOr(s section, key string, at Position) Position {
	if f, ok := s.fields[key]; ok {
		return d.at(f.v)
	}
	return at
}

func (d *decoder) sectionStr(s section, key, what string) string {
	f, ok := s.fields[key]
	if !ok {
		return ""
	}
	v, _ := d.str(f.v, what+"."+key)
	return v
}

// number reads a float64 field as Convox's YAML library does: an integer
// or a float.
func (d *decoder) number(n *yaml.Node, what string) (float64, bool) {
	n = d.resolve(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!int" || n.Tag == "!!float") {
		f, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64)
		if err != nil {
			if i, err := strconv.ParseInt(strings.ReplaceAll(n.Value, "_", ""), 0, 64); err == nil {
				return float64(i), true
			}
			switch strings.ToLower(n.Value) {
			case ".nan":
				return math.NaN(), true
			case ".inf", "+.inf":
				return math.Inf(1), true
			case "-.inf":
				return math.Inf(-1), true
			}
			d.errorf(n, "%s: %s is not a number", what, n.Value)
			return 0, false
		}
		return f, true
	}
	d.errorf(n, "%s must be a number, not %s", what, kindName(n))
	return 0, false
}

// list reads a raw sequence; a value that is not one is reported.
func (d *decoder) list(n *yaml.Node, what string) []*yaml.Node {
	n = d.resolve(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, "%s must be a list, not %s", what, kindName(n))
		return nil
	}
	var out []*yaml.Node
	for _, e := range n.Content {
		if e = d.resolve(e); e != nil {
			out = append(out, e)
		}
	}
	return out
}

// validateConvoxService runs Convox's per-service checks that look at
// fields kept as written.
func (m *Manifest) validateConvoxService(d *decoder, s *Service, configs map[string]bool) {
	if r, ok := s.Extra["volumeOptions"]; ok {
		for i, e := range d.list(r.Node, "service "+s.Name+": volumeOptions") {
			d.volumeOption(d.section(e, fmt.Sprintf("service %s: volumeOptions[%d]", s.Name, i)))
		}
	}
	if r, ok := s.Extra["securityContext"]; ok {
		d.securityContext(s, d.section(r.Node, "service "+s.Name+": securityContext"))
	}
	if r, ok := s.Extra["imagePullSecrets"]; ok {
		seen := map[string]int{}
		for i, e := range d.list(r.Node, "service "+s.Name+": imagePullSecrets") {
			what := fmt.Sprintf("service %s imagePullSecrets[%d]", s.Name, i)
			sec := d.section(e, what)
			reg := d.sectionStr(sec, "registry", what)
			if at, msg := d.imagePullSecret(sec, what); msg != "" {
				d.add(Error, at, "%s: %s", what, msg)
				continue
			}
			if prev, dup := seen[strings.ToLower(reg)]; dup {
				d.add(Error, d.within(sec, "registry"), "%s: duplicate registry %q (also declared at index %d); each registry may be declared at most once per service", what, reg, prev)
				continue
			}
			seen[strings.ToLower(reg)] = i
		}
	}
	if r, ok := s.Extra["configMounts"]; ok {
		for i, e := range d.list(r.Node, "service "+s.Name+": configMounts") {
			what := fmt.Sprintf("service %s: configMounts[%d]", s.Name, i)
			sec := d.section(e, what)
			id := d.sectionStr(sec, "id", what)
			switch {
			case id == "":
				d.add(Error, d.at(sec.n), "configMounts[*].id is required")
			case d.sectionStr(sec, "dir", what) == "":
				d.add(Error, d.at(sec.n), "configMounts[*].dir is required")
			case d.sectionStr(sec, "filename", what) == "":
				d.add(Error, d.at(sec.n), "configMounts[*].filename is required")
			}
			if !configs[id] {
				d.add(Error, d.within(sec, "id"), "config id: '%s' not found", id)
			}
		}
	}
	if r, ok := s.Scale.Extra["vpa"]; ok {
		d.vpa(d.section(r.Node, "service "+s.Name+": scale.vpa"))
	}
	d.validateScale(s)
}

const (
	allowedAccessModes = "ReadOnlyMany, ReadWriteMany, ReadWriteOnce"
)

// volumeOption is Convox's VolumeOption.Validate: the first of emptyDir,
// awsEfs and azureFiles that is set, its first problem.
func (d *decoder) volumeOption(v section) {
	what := "volumeOptions"
	switch {
	case v.has("emptyDir"):
		e := d.section(v.fields["emptyDir"].v, what+".emptyDir")
		at := d.at(v.fields["emptyDir"].k)
		medium, size := d.sectionStr(e, "medium", "emptyDir"), d.sectionStr(e, "sizeLimit", "emptyDir")
		switch {
		case d.sectionStr(e, "id", "emptyDir") == "":
			d.add(Error, at, "emptyDir.id is required")
		case d.sectionStr(e, "mountPath", "emptyDir") == "":
			d.add(Error, at, "emptyDir.mountPath is required")
		case medium != "" && medium != "Memory":
			d.add(Error, d.within(e, "medium"), "emptyDir.medium's allowed values: Memory")
		case size != "":
			if _, err := parseQuantity(size); err != nil {
				d.add(Error, d.within(e, "sizeLimit"), "emptyDir.sizeLimit is not a valid quantity: %v", err)
			}
		}
	case v.has("awsEfs"):
		e := d.section(v.fields["awsEfs"].v, what+".awsEfs")
		at := d.at(v.fields["awsEfs"].k)
		switch mode := d.sectionStr(e, "accessMode", "awsEfs"); {
		case d.sectionStr(e, "id", "awsEfs") == "":
			d.add(Error, at, "awsEfs.id is required")
		case d.sectionStr(e, "mountPath", "awsEfs") == "":
			d.add(Error, at, "awsEfs.mountPath is required")
		case !accessMode(mode):
			d.add(Error, d.valueOr(e, "accessMode", at), "awsEfs.accessMode must be one of these values: %s", allowedAccessModes)
		}
	case v.has("azureFiles"):
		e := d.section(v.fields["azureFiles"].v, what+".azureFiles")
		at := d.at(v.fields["azureFiles"].k)
		id := d.sectionStr(e, "id", "azureFiles")
		share := d.sectionStr(e, "shareSize", "azureFiles")
		switch mode := d.sectionStr(e, "accessMode", "azureFiles"); {
		case id == "":
			d.add(Error, at, "azureFiles.id is required")
		case !nameRE.MatchString(id):
			d.add(Error, d.within(e, "id"), "azureFiles.id must match %s", nameRE.String())
		case d.sectionStr(e, "mountPath", "azureFiles") == "":
			d.add(Error, at, "azureFiles.mountPath is required")
		case !accessMode(mode):
			d.add(Error, d.valueOr(e, "accessMode", at), "azureFiles.accessMode must be one of these values: %s", allowedAccessModes)
		case share != "":
			q, err := parseQuantity(share)
			if err != nil {
				d.add(Error, d.within(e, "shareSize"), "azureFiles.shareSize is invalid: %s", share)
			} else if q.Cmp(hundredGi) < 0 {
				d.add(Error, d.within(e, "shareSize"), "azureFiles.shareSize must be at least 100Gi (Azure Premium NFS minimum)")
			}
		}
	}
}

func accessMode(m string) bool {
	return m == "ReadOnlyMany" || m == "ReadWriteMany" || m == "ReadWriteOnce"
}

var validCapabilityName = regexp.MustCompile(`^[A-Z][A-Z0-9_]*$`)

// securityContext is Convox's ServiceSecurityContext.Validate. Convox
// stops at the first problem; every one is reported here.
func (d *decoder) securityContext(s *Service, sc section) {
	what := "service " + s.Name + ": securityContext"
	if p := d.sectionStr(sc, "seccompProfile", what); p != "" && p != "RuntimeDefault" && p != "Unconfined" {
		if p == "Localhost" {
			d.add(Error, d.within(sc, "seccompProfile"), "service %s: securityContext.seccompProfile: Localhost is not supported (no localhostProfile field); use RuntimeDefault or Unconfined", s.Name)
		} else {
			d.add(Error, d.within(sc, "seccompProfile"), "service %s: securityContext.seccompProfile: %q is not a supported value; allowed: RuntimeDefault, Unconfined", s.Name, p)
		}
	}
	if sc.has("capabilities") {
		caps := d.section(sc.fields["capabilities"].v, what+".capabilities")
		for _, kind := range []string{"add", "drop"} {
			f, ok := caps.fields[kind]
			if !ok {
				continue
			}
			names, pos := d.strs(f.v, what+".capabilities."+kind, false)
			for i, c := range names {
				switch {
				case strings.HasPrefix(c, "CAP_"):
					d.add(Error, pos[i], "service %s: securityContext.capabilities.%s: %q must not include CAP_ prefix (use %q)", s.Name, kind, c, strings.TrimPrefix(c, "CAP_"))
				case !validCapabilityName.MatchString(c):
					d.add(Error, pos[i], "service %s: securityContext.capabilities.%s: %q is not a valid capability name (expected uppercase letters, digits, underscores)", s.Name, kind, c)
				}
			}
		}
	}
	nonRoot, user := false, int64(-1)
	if f, ok := sc.fields["runAsNonRoot"]; ok {
		nonRoot, _ = d.boolean(f.v, what+".runAsNonRoot")
	}
	if f, ok := sc.fields["runAsUser"]; ok {
		if u, ok := d.integer(f.v, what+".runAsUser"); ok {
			user = int64(u)
		}
	}
	if f, ok := sc.fields["runAsGroup"]; ok {
		d.integer(f.v, what+".runAsGroup")
	}
	for _, k := range []string{"readOnlyRootFilesystem", "allowPrivilegeEscalation"} {
		if f, ok := sc.fields[k]; ok {
			d.boolean(f.v, what+"."+k)
		}
	}
	if nonRoot && user == 0 {
		d.add(Error, d.within(sc, "runAsUser"), "service %s: securityContext: runAsNonRoot=true is incompatible with runAsUser=0", s.Name)
	}
}

var registryHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*(:[0-9]+)?$`)

// imagePullSecret is Convox's ServiceImagePullSecret.Validate: its first
// problem and where it is, or "".
func (d *decoder) imagePullSecret(sec section, what string) (Position, string) {
	reg := d.sectionStr(sec, "registry", what)
	regAt := d.within(sec, "registry")
	password, passwordEnv := d.sectionStr(sec, "password", what), d.sectionStr(sec, "passwordEnv", what)
	switch {
	case strings.TrimSpace(reg) == "":
		return d.at(sec.n), "registry is required"
	case strings.Contains(reg, "://"):
		return regAt, fmt.Sprintf("registry %q must not include a scheme (drop http:// or https://)", reg)
	case strings.Contains(reg, "/"):
		return regAt, fmt.Sprintf("registry %q must not include a path (use the host only)", reg)
	case reg != strings.ToLower(reg):
		return regAt, fmt.Sprintf("registry %q must be lowercase", reg)
	case !registryHost.MatchString(reg):
		return regAt, fmt.Sprintf("registry %q is not a valid registry hostname", reg)
	case strings.TrimSpace(d.sectionStr(sec, "username", what)) == "":
		return d.at(sec.n), "username is required"
	case password != "" && passwordEnv != "":
		return d.within(sec, "passwordEnv"), "use passwordEnv to reference an env var, OR password for a literal value, not both"
	case password == "" && passwordEnv == "":
		return d.at(sec.n), "password or passwordEnv is required"
	}
	return Position{}, ""
}

// vpa is Convox's VPA.Validate, which Convox runs when it deploys the
// release rather than when it builds: a warning here.
func (d *decoder) vpa(v section) {
	mode := d.sectionStr(v, "updateMode", "scale.vpa")
	if mode == "false" {
		mode = "Off"
	}
	switch {
	case mode == "":
		d.add(Warning, d.at(v.n), "vpa.updateMode is required. Allowed values: Off, Initial, Recreate")
		return
	case !strings.EqualFold(mode, "Off") && !strings.EqualFold(mode, "Initial") && !strings.EqualFold(mode, "Recreate"):
		d.add(Warning, d.within(v, "updateMode"), "vpa.updateMode must be one of these values: Off, Initial, Recreate")
		return
	}
	var cpuOnly, memOnly bool
	if f, ok := v.fields["cpuOnly"]; ok {
		cpuOnly, _ = d.boolean(f.v, "scale.vpa.cpuOnly")
	}
	if f, ok := v.fields["memOnly"]; ok {
		memOnly, _ = d.boolean(f.v, "scale.vpa.memOnly")
	}
	if cpuOnly && memOnly {
		d.add(Warning, d.within(v, "memOnly"), "vpa.cpuOnly and vpa.memOnly cannot both be true")
	}
}

// autoscale is what validateServiceScale reads of scale.autoscale.
type autoscale struct {
	sec      section
	triggers map[string]section // cpu, memory, gpuUtilization, queueDepth: set ones
	custom   []section
}

func (a *autoscale) enabled() bool {
	return a != nil && (len(a.triggers) > 0 || len(a.custom) > 0)
}

var autoscaleTriggers = []string{"cpu", "memory", "gpuUtilization", "queueDepth"}

func (d *decoder) readAutoscale(s *Service) *autoscale {
	r, ok := s.Scale.Extra["autoscale"]
	if !ok {
		return nil
	}
	what := "service " + s.Name + ": scale.autoscale"
	a := &autoscale{sec: d.section(r.Node, what), triggers: map[string]section{}}
	for _, t := range autoscaleTriggers {
		if a.sec.has(t) {
			a.triggers[t] = d.section(a.sec.fields[t].v, what+"."+t)
		}
	}
	if f, ok := a.sec.fields["custom"]; ok {
		for i, e := range d.list(f.v, what+".custom") {
			a.custom = append(a.custom, d.section(e, fmt.Sprintf("%s.custom[%d]", what, i)))
		}
	}
	return a
}

// autoscaleEnabled reports whether scale.autoscale sets any trigger, as
// Convox's ServiceAutoscale.IsEnabled: "autoscale: {}" does not.
func autoscaleEnabled(r Raw) bool {
	n := r.Node
	if n == nil || n.Kind != yaml.MappingNode {
		return false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i].Value, n.Content[i+1]
		if v.Kind == yaml.ScalarNode && v.Tag == "!!null" {
			continue
		}
		switch k {
		case "cpu", "memory", "gpuUtilization", "queueDepth":
			return true
		case "custom":
			if v.Kind == yaml.SequenceNode && len(v.Content) > 0 {
				return true
			}
		}
	}
	return false
}

var prometheusMetricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)

// validateScale is Convox's validateServiceScale, on the count after
// defaults.
func (d *decoder) validateScale(s *Service) {
	a := d.readAutoscale(s)
	keda := false
	if r, ok := s.Scale.Extra["keda"]; ok {
		k := d.section(r.Node, "service "+s.Name+": scale.keda")
		if f, ok := k.fields["triggers"]; ok {
			keda = len(d.list(f.v, "service "+s.Name+": scale.keda.triggers")) > 0
		}
	}
	if s.Agent && (a.enabled() || keda) {
		d.add(Warning, s.position("scale"), "service %q: agent runs as DaemonSet; scale.autoscale and scale.keda configuration is ignored. Remove autoscale/keda or set agent:false to use autoscaling.", s.Name)
		return
	}
	at := s.position("scale")
	for _, k := range []string{"scale.count", "scale.min", "scale.max"} {
		if p, ok := s.pos[k]; ok {
			at = p
			break
		}
	}
	min, max := s.Scale.Count.Min, s.Scale.Count.Max
	if min < 0 {
		d.add(Error, at, "service %s: scale.min must be >= 0", s.Name)
	}
	if max < 0 {
		d.add(Error, at, "service %s: scale.max must be >= 0", s.Name)
	}
	if max < min {
		d.add(Error, at, "service %s: scale.max must be >= scale.min", s.Name)
	}
	if !a.enabled() {
		return
	}
	if max < 1 {
		d.add(Error, at, "service %s: scale.max must be >= 1 when autoscale is enabled", s.Name)
	}
	if max == min && max >= 1 {
		d.add(Error, at, "service %s: scale.max must be > scale.min when autoscale is enabled (ScaledObject would be a no-op)", s.Name)
	}
	what := "service " + s.Name + ": scale.autoscale"
	threshold := func(t string) (float64, Position) {
		sec := a.triggers[t]
		var v float64
		if f, ok := sec.fields["threshold"]; ok {
			v, _ = d.number(f.v, what+"."+t+".threshold")
		}
		return v, d.within(sec, "threshold")
	}
	for _, t := range []string{"cpu", "memory"} {
		if _, ok := a.triggers[t]; ok {
			if v, p := threshold(t); invalidPercent(v) {
				d.add(Error, p, "service %s: scale.autoscale.%s.threshold must be between 1 and 100", s.Name, t)
			}
		}
	}
	if _, ok := a.triggers["gpuUtilization"]; ok {
		if v, p := threshold("gpuUtilization"); invalidPercent(v) {
			d.add(Error, p, "service %s: scale.autoscale.gpuUtilization.threshold must be > 0 and <= 100", s.Name)
		}
		if gpu, _ := rawInt(s.Scale.Extra["gpu"], "count"); gpu == 0 {
			d.add(Error, d.at(a.sec.fields["gpuUtilization"].k), "service %s: scale.autoscale.gpuUtilization requires scale.gpu.count >= 1", s.Name)
		}
	}
	if _, ok := a.triggers["queueDepth"]; ok {
		if v, p := threshold("queueDepth"); math.IsNaN(v) || v <= 0 {
			d.add(Error, p, "service %s: scale.autoscale.queueDepth.threshold must be > 0", s.Name)
		}
	}
	for _, t := range autoscaleTriggers {
		sec, ok := a.triggers[t]
		if !ok {
			continue
		}
		if u := d.sectionStr(sec, "prometheusUrl", what+"."+t); u != "" {
			if msg := prometheusURLProblem(u); msg != "" {
				d.add(Error, d.within(sec, "prometheusUrl"), "service %s: scale.autoscale.%s.prometheusUrl %s", s.Name, t, msg)
			}
		}
		if n := d.sectionStr(sec, "metricName", what+"."+t); n != "" && !prometheusMetricName.MatchString(n) {
			d.add(Error, d.within(sec, "metricName"), "service %s: scale.autoscale.%s.metricName %q must match %s", s.Name, t, n, prometheusMetricName.String())
		}
	}
	_, gpuTrigger := a.triggers["gpuUtilization"]
	_, queueTrigger := a.triggers["queueDepth"]
	scalesToZero := gpuTrigger || queueTrigger
	for i, c := range a.custom {
		cw := fmt.Sprintf("%s.custom[%d]", what, i)
		name := d.sectionStr(c, "name", cw)
		if name != "" && !nameRE.MatchString(name) {
			d.add(Error, d.within(c, "name"), "service %s: scale.autoscale.custom[%d].name %q invalid, %s", s.Name, i, name, validName)
		}
		if strings.HasPrefix(strings.ToLower(name), "convox-") {
			d.add(Error, d.within(c, "name"), "service %s: scale.autoscale.custom[%d].name: %q uses reserved prefix 'convox-'", s.Name, i, name)
		}
		if c.has("authenticationRef") {
			ref := d.section(c.fields["authenticationRef"].v, cw+".authenticationRef")
			if d.sectionStr(ref, "kind", cw+".authenticationRef") == "ClusterTriggerAuthentication" {
				d.add(Error, d.within(ref, "kind"), "service %s: scale.autoscale.custom[%d].authenticationRef.kind: ClusterTriggerAuthentication is not permitted", s.Name, i)
			}
		}
		if t := strings.ToLower(d.sectionStr(c, "type", cw)); t != "cpu" && t != "memory" && t != "cron" {
			scalesToZero = true
		}
	}
	if min == 0 && !scalesToZero {
		d.add(Error, at, "service %s: scale.min: 0 combined with only always-active autoscale triggers (cpu/memory/cron) will never scale to zero; "+
			"KEDA's cpu/memory/cron scalers are always active. Add scale.autoscale.queueDepth, scale.autoscale.gpuUtilization, "+
			"or a scale.autoscale.custom[] prometheus/external trigger, or raise scale.min to 1.", s.Name)
	}
}

func invalidPercent(v float64) bool {
	return math.IsNaN(v) || v <= 0 || v > 100
}

func prometheusURLProblem(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Sprintf("is not a valid URL: %s", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("must use http or https scheme, got %q", u.Scheme)
	}
	if u.Host == "" {
		return "must include a host"
	}
	return ""
}

// validateBudget is Convox's validateBudget: its ten errors and its one
// warning (rule 3, which Convox prints on stderr).
func (m *Manifest) validateBudget(d *decoder) {
	if m.Budget.IsZero() {
		return
	}
	b := d.section(m.Budget.Node, "budget")
	var capUsd float64
	var notify int
	var never []string
	var neverPos []Position
	for _, k := range []string{"monthlyCapUsd", "alertThresholdPercent", "pricingAdjustment"} {
		if f, ok := b.fields[k]; ok {
			v, _ := d.number(f.v, "budget."+k)
			if k == "monthlyCapUsd" {
				capUsd = v
			}
		}
	}
	if f, ok := b.fields["notifyBeforeMinutes"]; ok {
		notify, _ = d.integer(f.v, "budget.notifyBeforeMinutes")
	}
	if f, ok := b.fields["neverAutoShutdown"]; ok {
		never, neverPos = d.strs(f.v, "budget.neverAutoShutdown", false)
	}
	action := d.sectionStr(b, "atCapAction", "budget")
	webhook := d.sectionStr(b, "atCapWebhookUrl", "budget")
	order := d.sectionStr(b, "shutdownOrder", "budget")
	grace := d.sectionStr(b, "shutdownGracePeriod", "budget")
	recovery := d.sectionStr(b, "recoveryMode", "budget")
	if action == "" && capUsd == 0 && webhook == "" && len(never) == 0 && order == "" && notify == 0 && grace == "" && recovery == "" {
		return
	}
	actionAt := d.within(b, "atCapAction")
	switch action {
	case "", "alert-only", "block-new-deploys", "auto-shutdown":
	default:
		d.add(Error, actionAt, "budget.atCapAction must be one of %q, %q, %q; got %q", "alert-only", "block-new-deploys", "auto-shutdown", action)
	}
	autoShutdown := action == "auto-shutdown"
	if autoShutdown && strings.TrimSpace(webhook) == "" {
		d.add(Error, actionAt, "budget.atCapAction %q requires budget.atCapWebhookUrl to be set; auto-shutdown silently killing services without notification is rejected by design", "auto-shutdown")
	}
	if autoShutdown && !(capUsd > 0) {
		d.add(Error, actionAt, "budget.atCapAction %q requires budget.monthlyCapUsd > 0; cannot shut down on cap breach without a cap", "auto-shutdown")
	}
	known := map[string]bool{}
	for _, s := range m.Services {
		known[s.Name] = true
	}
	for i, name := range never {
		if !known[name] {
			d.add(Warning, neverPos[i], "budget.neverAutoShutdown contains %q which is not a service in this manifest; ignoring at runtime", name)
		}
	}
	if notify != 0 && (notify < 5 || notify > 1440) {
		d.add(Error, d.within(b, "notifyBeforeMinutes"), "budget.notifyBeforeMinutes must be between 5 and 1440; got %d", notify)
	}
	if strings.TrimSpace(grace) != "" {
		if g, err := time.ParseDuration(grace); err != nil {
			d.add(Error, d.within(b, "shutdownGracePeriod"), "budget.shutdownGracePeriod must be a Go duration string (e.g. %q, %q); got %q", "5m", "30s", grace)
		} else if g < 0 || g > time.Hour {
			d.add(Error, d.within(b, "shutdownGracePeriod"), "budget.shutdownGracePeriod must be between 0s and 1h; got %s", grace)
		}
	}
	switch order {
	case "", "largest-cost", "newest":
	case "priority-annotation":
		d.add(Error, d.within(b, "shutdownOrder"), "budget.shutdownOrder %q reserved for a future release; use %q or %q", "priority-annotation", "largest-cost", "newest")
	default:
		d.add(Error, d.within(b, "shutdownOrder"), "budget.shutdownOrder must be one of %q, %q; got %q", "largest-cost", "newest", order)
	}
	switch recovery {
	case "", "auto-on-reset", "manual":
	case "scheduled":
		d.add(Error, d.within(b, "recoveryMode"), "budget.recoveryMode %q reserved for 3.25.0; use %q or %q", "scheduled", "auto-on-reset", "manual")
	default:
		d.add(Error, d.within(b, "recoveryMode"), "budget.recoveryMode must be one of %q, %q; got %q", "auto-on-reset", "manual", recovery)
	}
	if !autoShutdown {
		return
	}
	if len(m.Services) == 0 {
		d.add(Error, actionAt, "budget.atCapAction %q requires at least one service in the services block; timer-only apps cannot be auto-shut. Use %q or remove auto-shutdown.", "auto-shutdown", "block-new-deploys")
		return
	}
	exempt := map[string]bool{}
	for _, name := range never {
		if known[name] {
			exempt[name] = true
		}
	}
	for _, s := range m.Services {
		if !exempt[s.Name] {
			return
		}
	}
	d.add(Error, actionAt, "budget.atCapAction %q with all services listed in neverAutoShutdown leaves no services eligible; either remove a service from neverAutoShutdown or use atCapAction %q", "auto-shutdown", "block-new-deploys")
}

// configIDs are the ids of the configs: section.
func (m *Manifest) configIDs() map[string]bool {
	ids := map[string]bool{}
	n := m.Configs.Node
	if n == nil || n.Kind != yaml.SequenceNode {
		return ids
	}
	for _, e := range n.Content {
		if e.Kind != yaml.MappingNode {
			continue
		}
		for i := 0; i+1 < len(e.Content); i += 2 {
			if e.Content[i].Value == "id" && e.Content[i+1].Kind == yaml.ScalarNode {
				ids[e.Content[i+1].Value] = true
			}
		}
	}
	return ids
}
