package manifest

import (
	"slices"
	"sort"
	"strings"
	"testing"
)

// convoxChecks lists every check of Convox's manifest validation
// (pkg/manifest: validate.go, and the Validate methods in service.go and
// config.go; Load's checks in manifest.go; the type checks of yaml.go),
// each with its message as Convox's source writes it and a fixture that
// fails it, at the place given.
var convoxChecks = []struct {
	check string // Convox's function and rule
	msg   string // Convox's message, copied from its source (formatted)
	src   string
	at    string   // line:col of the problem
	warn  bool     // Convox prints it as a WARNING and goes on
	extra []string // other problems Convox reports for the same fixture
}{
	// validate(): configs
	{"AppConfig.Validate", "configs[*].id is required",
		"configs:\n\t- name: x\n", "2:5", false, nil},
	// validateBalancers
	{"validateBalancers: no ports", "balancer b has no ports",
		"services:\n\tweb: {}\nbalancers:\n\tb:\n\t\tservice: web\n", "4:3", false, nil},
	{"validateBalancers: blank service", "balancer b has blank service",
		"balancers:\n\tb:\n\t\tports:\n\t\t\t80: 3000\n", "2:3", false, nil},
	{"validateBalancers: unknown service", "balancer b refers to unknown service api",
		"services:\n\tweb: {}\nbalancers:\n\tb:\n\t\tservice: api\n\t\tports:\n\t\t\t80: 3000\n", "5:14", false, nil},
	{"validateBalancers: whitelist cidr", "balancer b whitelist 10.0.0.0/33 is not a valid cidr range",
		"services:\n\tweb: {}\nbalancers:\n\tb:\n\t\tservice: web\n\t\tports:\n\t\t\t80: 3000\n\t\twhitelist: [10.0.0.0/33]\n", "8:17", false, nil},
	// validateBudget
	{"validateBudget: atCapAction enum", `budget.atCapAction must be one of "alert-only", "block-new-deploys", "auto-shutdown"; got "shutdown"`,
		"services:\n\tweb: {}\nbudget:\n\tmonthlyCapUsd: 100\n\tatCapAction: shutdown\n", "5:16", false, nil},
	{"validateBudget: rule 1, auto-shutdown needs atCapWebhookUrl", `budget.atCapAction "auto-shutdown" requires budget.atCapWebhookUrl to be set; auto-shutdown silently killing services without notification is rejected by design`,
		"services:\n\tweb: {}\nbudget:\n\tmonthlyCapUsd: 100\n\tatCapAction: auto-shutdown\n", "5:16", false, nil},
	{"validateBudget: rule 2, auto-shutdown needs monthlyCapUsd", `budget.atCapAction "auto-shutdown" requires budget.monthlyCapUsd > 0; cannot shut down on cap breach without a cap`,
		"services:\n\tweb: {}\nbudget:\n\tatCapWebhookUrl: https://hooks.example.com/b\n\tatCapAction: auto-shutdown\n", "5:16", false, nil},
	{"validateBudget: rule 3, neverAutoShutdown names no service", `budget.neverAutoShutdown contains "wbe" which is not a service in this manifest; ignoring at runtime`,
		"services:\n\tweb: {}\nbudget:\n\tneverAutoShutdown: [wbe]\n", "4:23", true, nil},
	{"validateBudget: rule 4, notifyBeforeMinutes range", "budget.notifyBeforeMinutes must be between 5 and 1440; got 2",
		"services:\n\tweb: {}\nbudget:\n\tnotifyBeforeMinutes: 2\n", "4:24", false, nil},
	{"validateBudget: rule 5, shutdownGracePeriod duration", `budget.shutdownGracePeriod must be a Go duration string (e.g. "5m", "30s"); got "5 minutes"`,
		"services:\n\tweb: {}\nbudget:\n\tshutdownGracePeriod: 5 minutes\n", "4:24", false, nil},
	{"validateBudget: rule 6, shutdownGracePeriod range", "budget.shutdownGracePeriod must be between 0s and 1h; got 2h",
		"services:\n\tweb: {}\nbudget:\n\tshutdownGracePeriod: 2h\n", "4:24", false, nil},
	{"validateBudget: rule 7, shutdownOrder enum", `budget.shutdownOrder must be one of "largest-cost", "newest"; got "oldest"`,
		"services:\n\tweb: {}\nbudget:\n\tshutdownOrder: oldest\n", "4:18", false, nil},
	{"validateBudget: rule 7a, shutdownOrder reserved", `budget.shutdownOrder "priority-annotation" reserved for a future release; use "largest-cost" or "newest"`,
		"services:\n\tweb: {}\nbudget:\n\tshutdownOrder: priority-annotation\n", "4:18", false, nil},
	{"validateBudget: rule 8, recoveryMode enum", `budget.recoveryMode must be one of "auto-on-reset", "manual"; got "never"`,
		"services:\n\tweb: {}\nbudget:\n\trecoveryMode: never\n", "4:17", false, nil},
	{"validateBudget: rule 9, recoveryMode reserved", `budget.recoveryMode "scheduled" reserved for 3.25.0; use "auto-on-reset" or "manual"`,
		"services:\n\tweb: {}\nbudget:\n\trecoveryMode: scheduled\n", "4:17", false, nil},
	{"validateBudget: rule 10, every service exempt", `budget.atCapAction "auto-shutdown" with all services listed in neverAutoShutdown leaves no services eligible; either remove a service from neverAutoShutdown or use atCapAction "block-new-deploys"`,
		"services:\n\tweb: {}\nbudget:\n\tmonthlyCapUsd: 10\n\tatCapWebhookUrl: https://hooks.example.com/b\n\tatCapAction: auto-shutdown\n\tneverAutoShutdown: [web]\n", "6:16", false, nil},
	{"validateBudget: rule 10a, timer-only app", `budget.atCapAction "auto-shutdown" requires at least one service in the services block; timer-only apps cannot be auto-shut. Use "block-new-deploys" or remove auto-shutdown.`,
		"budget:\n\tmonthlyCapUsd: 10\n\tatCapWebhookUrl: https://hooks.example.com/b\n\tatCapAction: auto-shutdown\n", "4:16", false, nil},
	// validateEnv
	{"validateEnv: ServiceEnvironment", "required env: SECRET",
		"services:\n\tweb:\n\t\tenvironment:\n\t\t\t- SECRET\n", "4:9", false, nil},
	// validateResources
	{"validateResources: name", "resource name my_db invalid, must contain only lowercase alphanumeric and dashes",
		"resources:\n\tmy_db:\n\t\ttype: postgres\n", "2:3", false, nil},
	{"validateResources: blank type", `resource "db" has blank type`,
		"resources:\n\tdb:\n\t\toptions: {}\n", "2:3", false, nil},
	// validateServices
	{"validateServices: name", "service name Web invalid, must contain only lowercase alphanumeric and dashes",
		"services:\n\tWeb: {}\n", "2:3", false, nil},
	{"validateServices: deployment minimum < 0", "service web deployment minimum can not be less than 0",
		"services:\n\tweb:\n\t\tdeployment:\n\t\t\tminimum: -1\n", "4:7", false, nil},
	{"validateServices: deployment minimum > 100", "service web deployment minimum can not be greater than 100",
		"services:\n\tweb:\n\t\tdeployment:\n\t\t\tminimum: 101\n", "4:7", false, nil},
	{"validateServices: deployment maximum < 100", "service web deployment maximum can not be less than 100",
		"services:\n\tweb:\n\t\tdeployment:\n\t\t\tmaximum: 99\n", "4:7", false, nil},
	{"validateServices: deployment maximum > 200", "service web deployment maximum can not be greater than 200",
		"services:\n\tweb:\n\t\tdeployment:\n\t\t\tmaximum: 201\n", "4:7", false, nil},
	{"validateServices: internal and internalRouter", "service web can not have both internal and internalRouter set as true",
		"services:\n\tweb:\n\t\tinternal: true\n\t\tinternalRouter: true\n", "4:5", false, nil},
	{"validateServices: unknown resource", "service web references a resource that does not exist: db",
		"services:\n\tweb:\n\t\tresources: [db]\n", "3:17", false, nil},
	{"VolumeEmptyDir.Validate: id", "emptyDir.id is required",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- emptyDir:\n\t\t\t\t\tmountPath: /tmp/x\n", "4:9", false, nil},
	{"VolumeEmptyDir.Validate: mountPath", "emptyDir.mountPath is required",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- emptyDir:\n\t\t\t\t\tid: cache\n", "4:9", false, nil},
	{"VolumeEmptyDir.Validate: medium", "emptyDir.medium's allowed values: Memory",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- emptyDir:\n\t\t\t\t\tid: cache\n\t\t\t\t\tmountPath: /tmp/x\n\t\t\t\t\tmedium: Disk\n", "7:19", false, nil},
	{"VolumeEmptyDir.Validate: sizeLimit", "emptyDir.sizeLimit is not a valid quantity: quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- emptyDir:\n\t\t\t\t\tid: cache\n\t\t\t\t\tmountPath: /tmp/x\n\t\t\t\t\tsizeLimit: 1 GB\n", "7:22", false, nil},
	{"VolumeEmptyDir.Validate: sizeLimit suffix", "emptyDir.sizeLimit is not a valid quantity: unable to parse quantity's suffix",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- emptyDir:\n\t\t\t\t\tid: cache\n\t\t\t\t\tmountPath: /tmp/x\n\t\t\t\t\tsizeLimit: 5MM\n", "7:22", false, nil},
	{"VolumeAwsEfs.Validate: id", "awsEfs.id is required",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- awsEfs:\n\t\t\t\t\tmountPath: /data\n", "4:9", false, nil},
	{"VolumeAwsEfs.Validate: mountPath", "awsEfs.mountPath is required",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- awsEfs:\n\t\t\t\t\tid: data\n", "4:9", false, nil},
	{"VolumeAwsEfs.Validate: accessMode", "awsEfs.accessMode must be one of these values: ReadOnlyMany, ReadWriteMany, ReadWriteOnce",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- awsEfs:\n\t\t\t\t\tid: data\n\t\t\t\t\tmountPath: /data\n\t\t\t\t\taccessMode: ReadWrite\n", "7:23", false, nil},
	{"VolumeAzureFiles.Validate: id", "azureFiles.id is required",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- azureFiles:\n\t\t\t\t\tmountPath: /data\n", "4:9", false, nil},
	{"VolumeAzureFiles.Validate: id name", "azureFiles.id must match ^[a-z][a-z0-9-]*$",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- azureFiles:\n\t\t\t\t\tid: Data_1\n\t\t\t\t\tmountPath: /data\n", "5:15", false, nil},
	{"VolumeAzureFiles.Validate: mountPath", "azureFiles.mountPath is required",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- azureFiles:\n\t\t\t\t\tid: data\n", "4:9", false, nil},
	{"VolumeAzureFiles.Validate: accessMode", "azureFiles.accessMode must be one of these values: ReadOnlyMany, ReadWriteMany, ReadWriteOnce",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- azureFiles:\n\t\t\t\t\tid: data\n\t\t\t\t\tmountPath: /data\n", "4:9", false, nil},
	{"VolumeAzureFiles.Validate: shareSize", "azureFiles.shareSize is invalid: lots",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- azureFiles:\n\t\t\t\t\tid: data\n\t\t\t\t\tmountPath: /data\n\t\t\t\t\taccessMode: ReadWriteMany\n\t\t\t\t\tshareSize: lots\n", "8:22", false, nil},
	{"VolumeAzureFiles.Validate: shareSize minimum", "azureFiles.shareSize must be at least 100Gi (Azure Premium NFS minimum)",
		"services:\n\tweb:\n\t\tvolumeOptions:\n\t\t\t- azureFiles:\n\t\t\t\t\tid: data\n\t\t\t\t\tmountPath: /data\n\t\t\t\t\taccessMode: ReadWriteMany\n\t\t\t\t\tshareSize: 99Gi\n", "8:22", false, nil},
	{"ServiceSecurityContext.Validate: seccomp Localhost", "service web: securityContext.seccompProfile: Localhost is not supported (no localhostProfile field); use RuntimeDefault or Unconfined",
		"services:\n\tweb:\n\t\tsecurityContext:\n\t\t\tseccompProfile: Localhost\n", "4:23", false, nil},
	{"ServiceSecurityContext.Validate: seccomp value", `service web: securityContext.seccompProfile: "Default" is not a supported value; allowed: RuntimeDefault, Unconfined`,
		"services:\n\tweb:\n\t\tsecurityContext:\n\t\t\tseccompProfile: Default\n", "4:23", false, nil},
	{"ServiceSecurityContext.Validate: capability CAP_ prefix", `service web: securityContext.capabilities.add: "CAP_NET_ADMIN" must not include CAP_ prefix (use "NET_ADMIN")`,
		"services:\n\tweb:\n\t\tsecurityContext:\n\t\t\tcapabilities:\n\t\t\t\tadd: [CAP_NET_ADMIN]\n", "5:15", false, nil},
	{"ServiceSecurityContext.Validate: capability name", `service web: securityContext.capabilities.drop: "net_raw" is not a valid capability name (expected uppercase letters, digits, underscores)`,
		"services:\n\tweb:\n\t\tsecurityContext:\n\t\t\tcapabilities:\n\t\t\t\tdrop:\n\t\t\t\t\t- net_raw\n", "6:13", false, nil},
	{"ServiceSecurityContext.Validate: runAsNonRoot with runAsUser 0", "service web: securityContext: runAsNonRoot=true is incompatible with runAsUser=0",
		"services:\n\tweb:\n\t\tsecurityContext:\n\t\t\trunAsNonRoot: true\n\t\t\trunAsUser: 0\n", "5:18", false, nil},
	{"ServiceImagePullSecret.Validate: registry", "service web imagePullSecrets[0]: registry is required",
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- username: u\n\t\t\t\tpasswordEnv: P\n", "4:9", false, nil},
	{"ServiceImagePullSecret.Validate: scheme", `service web imagePullSecrets[0]: registry "https://ghcr.io" must not include a scheme (drop http:// or https://)`,
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: https://ghcr.io\n\t\t\t\tusername: u\n\t\t\t\tpasswordEnv: P\n", "4:19", false, nil},
	{"ServiceImagePullSecret.Validate: path", `service web imagePullSecrets[0]: registry "ghcr.io/org" must not include a path (use the host only)`,
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: ghcr.io/org\n\t\t\t\tusername: u\n\t\t\t\tpasswordEnv: P\n", "4:19", false, nil},
	{"ServiceImagePullSecret.Validate: lowercase", `service web imagePullSecrets[0]: registry "GHCR.io" must be lowercase`,
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: GHCR.io\n\t\t\t\tusername: u\n\t\t\t\tpasswordEnv: P\n", "4:19", false, nil},
	{"ServiceImagePullSecret.Validate: hostname", `service web imagePullSecrets[0]: registry "ghcr_io" is not a valid registry hostname`,
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: ghcr_io\n\t\t\t\tusername: u\n\t\t\t\tpasswordEnv: P\n", "4:19", false, nil},
	{"ServiceImagePullSecret.Validate: username", "service web imagePullSecrets[0]: username is required",
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: ghcr.io\n\t\t\t\tpasswordEnv: P\n", "4:9", false, nil},
	{"ServiceImagePullSecret.Validate: password and passwordEnv", "service web imagePullSecrets[0]: use passwordEnv to reference an env var, OR password for a literal value, not both",
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: ghcr.io\n\t\t\t\tusername: u\n\t\t\t\tpassword: p\n\t\t\t\tpasswordEnv: P\n", "7:22", false, nil},
	{"ServiceImagePullSecret.Validate: no password", "service web imagePullSecrets[0]: password or passwordEnv is required",
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- registry: ghcr.io\n\t\t\t\tusername: u\n", "4:9", false, nil},
	{"validateServices: imagePullSecrets duplicate registry", `service web imagePullSecrets[1]: duplicate registry "ghcr.io" (also declared at index 0); each registry may be declared at most once per service`,
		"services:\n\tweb:\n\t\timagePullSecrets:\n\t\t\t- {registry: ghcr.io, username: u, passwordEnv: P}\n\t\t\t- {registry: ghcr.io, username: v, passwordEnv: Q}\n", "5:20", false, nil},
	{"ConfigMount.Validate: id", "configMounts[*].id is required",
		"configs:\n\t- id: c\nservices:\n\tweb:\n\t\tconfigMounts:\n\t\t\t- dir: /etc/app\n\t\t\t\tfilename: app.conf\n", "6:9", false,
		[]string{"convox.yml:6:9: config id: '' not found"}},
	{"ConfigMount.Validate: dir", "configMounts[*].dir is required",
		"configs:\n\t- id: c\nservices:\n\tweb:\n\t\tconfigMounts:\n\t\t\t- id: c\n\t\t\t\tfilename: app.conf\n", "6:9", false, nil},
	{"ConfigMount.Validate: filename", "configMounts[*].filename is required",
		"configs:\n\t- id: c\nservices:\n\tweb:\n\t\tconfigMounts:\n\t\t\t- id: c\n\t\t\t\tdir: /etc/app\n", "6:9", false, nil},
	{"validateServices: configMounts unknown config", "config id: 'nope' not found",
		"configs:\n\t- id: c\nservices:\n\tweb:\n\t\tconfigMounts:\n\t\t\t- id: nope\n\t\t\t\tdir: /etc/app\n\t\t\t\tfilename: app.conf\n", "6:13", false, nil},
	// validateServiceScale
	{"validateServiceScale: agent with autoscale", `service "web": agent runs as DaemonSet; scale.autoscale and scale.keda configuration is ignored. Remove autoscale/keda or set agent:false to use autoscaling.`,
		"services:\n\tweb:\n\t\tagent: true\n\t\tscale:\n\t\t\tautoscale:\n\t\t\t\tcpu:\n\t\t\t\t\tthreshold: 70\n", "4:5", true, nil},
	{"validateServiceScale: scale.min >= 0", "service web: scale.min must be >= 0",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: -1\n\t\t\tmax: 2\n", "4:7", false, nil},
	{"validateServiceScale: scale.max >= 0", "service web: scale.max must be >= 0",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tcount:\n\t\t\t\tmin: -2\n\t\t\t\tmax: -1\n", "4:7", false,
		[]string{"convox.yml:4:7: service web: scale.min must be >= 0"}},
	{"validateServiceScale: scale.max >= scale.min", "service web: scale.max must be >= scale.min",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tcount: 5-2\n", "4:7", false, nil},
	{"validateServiceScale: scale.max >= 1 with autoscale", "service web: scale.max must be >= 1 when autoscale is enabled",
		// A maximum of 0 with autoscale becomes Convox's default of 10, so
		// only a negative one fails.
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: -1\n\t\t\tmax: -1\n\t\t\tautoscale:\n\t\t\t\tqueueDepth:\n\t\t\t\t\tthreshold: 5\n", "4:7", false,
		[]string{"convox.yml:4:7: service web: scale.min must be >= 0", "convox.yml:4:7: service web: scale.max must be >= 0"}},
	{"validateServiceScale: scale.max > scale.min with autoscale", "service web: scale.max must be > scale.min when autoscale is enabled (ScaledObject would be a no-op)",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 2\n\t\t\tmax: 2\n\t\t\tautoscale:\n\t\t\t\tcpu:\n\t\t\t\t\tthreshold: 70\n", "4:7", false, nil},
	{"validateServiceScale: cpu threshold", "service web: scale.autoscale.cpu.threshold must be between 1 and 100",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tcpu:\n\t\t\t\t\tthreshold: 170\n", "8:22", false, nil},
	{"validateServiceScale: memory threshold", "service web: scale.autoscale.memory.threshold must be between 1 and 100",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tmemory: {}\n", "7:17", false, nil},
	{"validateServiceScale: gpuUtilization threshold", "service web: scale.autoscale.gpuUtilization.threshold must be > 0 and <= 100",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tgpu: 1\n\t\t\tautoscale:\n\t\t\t\tgpuUtilization:\n\t\t\t\t\tthreshold: 0\n", "9:22", false, nil},
	{"validateServiceScale: gpuUtilization needs a gpu", "service web: scale.autoscale.gpuUtilization requires scale.gpu.count >= 1",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tgpuUtilization:\n\t\t\t\t\tthreshold: 80\n", "7:9", false, nil},
	{"validateServiceScale: queueDepth threshold", "service web: scale.autoscale.queueDepth.threshold must be > 0",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tqueueDepth:\n\t\t\t\t\tthreshold: -1\n", "8:22", false, nil},
	{"validateAutoscaleMode: prometheusUrl URL", `service web: scale.autoscale.queueDepth.prometheusUrl is not a valid URL: parse "http://[::1": missing ']' in host`,
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tqueueDepth:\n\t\t\t\t\tthreshold: 5\n\t\t\t\t\tprometheusUrl: \"http://[::1\"\n", "9:26", false, nil},
	{"validateAutoscaleMode: prometheusUrl scheme", `service web: scale.autoscale.queueDepth.prometheusUrl must use http or https scheme, got "ftp"`,
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tqueueDepth:\n\t\t\t\t\tthreshold: 5\n\t\t\t\t\tprometheusUrl: ftp://prom\n", "9:26", false, nil},
	{"validateAutoscaleMode: prometheusUrl host", "service web: scale.autoscale.queueDepth.prometheusUrl must include a host",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tqueueDepth:\n\t\t\t\t\tthreshold: 5\n\t\t\t\t\tprometheusUrl: http:///metrics\n", "9:26", false, nil},
	{"validateAutoscaleMode: metricName", `service web: scale.autoscale.queueDepth.metricName "requests-waiting" must match ^[a-zA-Z_:][a-zA-Z0-9_:]*$`,
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tqueueDepth:\n\t\t\t\t\tthreshold: 5\n\t\t\t\t\tmetricName: requests-waiting\n", "9:23", false, nil},
	{"validateServiceScale: custom trigger name", `service web: scale.autoscale.custom[0].name "Queue_1" invalid, must contain only lowercase alphanumeric and dashes`,
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tcustom:\n\t\t\t\t\t- type: prometheus\n\t\t\t\t\t\tname: Queue_1\n", "9:19", false, nil},
	{"validateServiceScale: custom trigger reserved prefix", `service web: scale.autoscale.custom[0].name: "convox-queue" uses reserved prefix 'convox-'`,
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tcustom:\n\t\t\t\t\t- type: prometheus\n\t\t\t\t\t\tname: convox-queue\n", "9:19", false, nil},
	{"validateServiceScale: ClusterTriggerAuthentication", "service web: scale.autoscale.custom[0].authenticationRef.kind: ClusterTriggerAuthentication is not permitted",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 1\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tcustom:\n\t\t\t\t\t- type: aws-sqs-queue\n\t\t\t\t\t\tauthenticationRef:\n\t\t\t\t\t\t\tname: a\n\t\t\t\t\t\t\tkind: ClusterTriggerAuthentication\n", "11:21", false, nil},
	{"validateServiceScale: min 0 never scales to zero", "service web: scale.min: 0 combined with only always-active autoscale triggers (cpu/memory/cron) will never scale to zero; KEDA's cpu/memory/cron scalers are always active. Add scale.autoscale.queueDepth, scale.autoscale.gpuUtilization, or a scale.autoscale.custom[] prometheus/external trigger, or raise scale.min to 1.",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmin: 0\n\t\t\tmax: 3\n\t\t\tautoscale:\n\t\t\t\tcpu:\n\t\t\t\t\tthreshold: 70\n", "4:7", false, nil},
	// validateTimers
	{"validateTimers: name", "timer name T1 invalid, must contain only lowercase alphanumeric and dashes",
		"services:\n\tweb: {}\ntimers:\n\tT1:\n\t\tschedule: \"0 1 * * *\"\n\t\tservice: web\n", "4:3", false, nil},
	{"validateTimers: unknown service", "timer t references a service that does not exist: wbe",
		"services:\n\tweb: {}\ntimers:\n\tt:\n\t\tschedule: \"0 1 * * *\"\n\t\tservice: wbe\n", "6:14", false, nil},
	{"validateTimers: schedule ?", "timer t invalid, schedule cannot contain ?",
		"services:\n\tweb: {}\ntimers:\n\tt:\n\t\tschedule: \"0 1? * * *\"\n\t\tservice: web\n", "5:15", false, nil},
	// Load: ApplyDefaults and CombineLabels
	{"ApplyDefaults: cpu limit", "cpu limit can not be less cpu request",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tcpu: 500\n\t\t\tlimit:\n\t\t\t\tcpu: 100\n", "5:7", false, nil},
	{"ApplyDefaults: memory limit", "memory limit can not be less memory request",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tmemory: 1024\n\t\t\tlimit:\n\t\t\t\tmemory: 512\n", "5:7", false, nil},
	{"CombineLabels: reserved key", "reserved label key 'app' is not allowed",
		"labels:\n\tapp: x\n", "2:3", false, nil},
	// VPA.Validate (Convox runs it when it deploys; a warning here)
	{"VPA.Validate: updateMode required", "vpa.updateMode is required. Allowed values: Off, Initial, Recreate",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tvpa:\n\t\t\t\tminCpu: \"100\"\n", "5:9", true, nil},
	{"VPA.Validate: updateMode value", "vpa.updateMode must be one of these values: Off, Initial, Recreate",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tvpa:\n\t\t\t\tupdateMode: Auto\n", "5:21", true, nil},
	{"VPA.Validate: cpuOnly and memOnly", "vpa.cpuOnly and vpa.memOnly cannot both be true",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tvpa:\n\t\t\t\tupdateMode: Off\n\t\t\t\tcpuOnly: true\n\t\t\t\tmemOnly: true\n", "7:18", true, nil},
	// yaml.go: how Convox's types read the YAML
	{"ServiceAgent.UnmarshalYAML: ports", "agent ports are now specified at the service level",
		"services:\n\tweb:\n\t\tagent:\n\t\t\tports: [8125]\n", "4:7", false, nil},
	{"ServiceAgent.UnmarshalYAML: type", "could not parse agent: 3",
		"services:\n\tweb:\n\t\tagent: 3\n", "3:12", false, nil},
	{"ServiceBuild.UnmarshalYAML", "unknown type for service build: int",
		"services:\n\tweb:\n\t\tbuild: 3\n", "3:12", false, nil},
	{"ServiceDomains.UnmarshalYAML", "unknown type for service domain: int",
		"services:\n\tweb:\n\t\tdomain: 3\n", "3:13", false, nil},
	{"ServiceHealth.UnmarshalYAML", "unknown type for service health: []interface {}",
		"services:\n\tweb:\n\t\thealth: [a]\n", "3:13", false, nil},
	{"ServiceScale.UnmarshalYAML", "unknown type for service scale: []interface {}",
		"services:\n\tweb:\n\t\tscale: [1]\n", "3:12", false, nil},
	{"ServiceScaleGpu.UnmarshalYAML", "unknown type for service scale gpu: string",
		"services:\n\tweb:\n\t\tscale:\n\t\t\tgpu: nvidia\n", "4:12", false, nil},
	{"Environment.UnmarshalYAML", "unknown type for service environment: map[interface {}]interface {}",
		"services:\n\tweb:\n\t\tenvironment: {A: b}\n", "3:18", false, nil},
	{"BalancerWhitelist.UnmarshalYAML: entry", "unknown type for balancer whitelist: []interface {}",
		"services:\n\tweb: {}\nbalancers:\n\tb:\n\t\tservice: web\n\t\tports:\n\t\t\t80: 3000\n\t\twhitelist: [10]\n", "8:17", false, nil},
	{"BalancerWhitelist.UnmarshalYAML: type", "unknown type for balancer whitelist: map[interface {}]interface {}",
		"services:\n\tweb: {}\nbalancers:\n\tb:\n\t\tservice: web\n\t\tports:\n\t\t\t80: 3000\n\t\twhitelist: {a: b}\n", "8:16", false, nil},
	{"Annotations.UnmarshalYAML: format", "invalid annotation format: novalue",
		"services:\n\tweb:\n\t\tannotations:\n\t\t\t- novalue\n", "4:9", false, nil},
	{"Annotations.UnmarshalYAML: value", "annotation value is not a string: count",
		"services:\n\tweb:\n\t\tannotations:\n\t\t\t- count: 3\n", "4:16", false, nil},
	{"Annotations.UnmarshalYAML: key", "annotation key is not a string: 1",
		"services:\n\tweb:\n\t\tingressAnnotations:\n\t\t\t- 1: x\n", "4:9", false, nil},
	{"Annotations.UnmarshalYAML: type", "unsupported annotation type: []interface {}",
		"services:\n\tweb:\n\t\tannotations:\n\t\t\t- [a]\n", "4:9", false, nil},
	{"Annotations.UnmarshalYAML: not a list", "failed to unmarshal annotations: cannot unmarshal !!map into []interface {}",
		"services:\n\tweb:\n\t\tannotations:\n\t\t\ta: b\n", "4:7", false, nil},
}

func TestConvoxChecks(t *testing.T) {
	for _, tt := range convoxChecks {
		t.Run(tt.check, func(t *testing.T) {
			opts := Options{}
			if strings.HasPrefix(tt.check, "validateEnv") {
				opts.Env = map[string]string{}
			}
			_, got := parse(t, tt.src, opts)
			want := "convox.yml:" + tt.at + ": "
			if tt.warn {
				want += "warning: "
			}
			want += tt.msg
			wants := append([]string{want}, tt.extra...)
			sort.Strings(got)
			sort.Strings(wants)
			if !slices.Equal(got, wants) {
				t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(wants, "\n"))
			}
		})
	}
}
