/**
 * Field numbers of the Kubernetes protobuf messages this server decodes: the objects kubectl's
 * typed `create <kind>` and `autoscale` subcommands, `drain` (Eviction), DeleteOptions, `auth` (reviews)
 * and `create token` send. Facts taken from the upstream API
 * definitions (k8s.io/api, apimachinery); field names are the JSON names.
 *
 * Each entry is "number name type". Type prefixes: "[]" repeated, "*" pointer or non-omitempty
 * (a zero value is kept; otherwise zero values are dropped, as Go's JSON omitempty does), "~"
 * inline (the message's fields are merged into the parent, like an embedded Go struct), "-" a
 * field accepted and dropped (status, managed fields: ignored on create anyway).
 * map<K,V> is a map. Scalars: string int32 int64 bool bytes. Special messages decoded by code:
 * Time, Quantity, IntOrString.
 */
const defs: Record<string, string[]> = {
  // meta/v1 and runtime
  Unknown: ['1 typeMeta TypeMeta', '2 raw bytes', '3 contentEncoding string', '4 contentType string'],
  TypeMeta: ['1 apiVersion string', '2 kind string'],
  ObjectMeta: [
    '1 name string',
    '2 generateName string',
    '3 namespace string',
    '4 selfLink string',
    '5 uid string',
    '6 resourceVersion string',
    '7 generation int64',
    '8 creationTimestamp Time',
    '9 deletionTimestamp *Time',
    '10 deletionGracePeriodSeconds *int64',
    '11 labels map<string,string>',
    '12 annotations map<string,string>',
    '13 ownerReferences []OwnerReference',
    '14 finalizers []string',
    '17 managedFields -',
  ],
  OwnerReference: ['1 kind *string', '3 name *string', '4 uid *string', '5 apiVersion *string', '6 controller *bool', '7 blockOwnerDeletion *bool'],
  LabelSelector: ['1 matchLabels map<string,string>', '2 matchExpressions []LabelSelectorRequirement'],
  LabelSelectorRequirement: ['1 key *string', '2 operator *string', '3 values []string'],
  DeleteOptions: ['1 gracePeriodSeconds *int64', '2 preconditions *Preconditions', '3 orphanDependents *bool', '4 propagationPolicy *string', '5 dryRun []string'],
  Preconditions: ['1 uid *string', '2 resourceVersion *string'],

  // core/v1
  Namespace: ['1 metadata ObjectMeta', '2 spec NamespaceSpec', '3 status -'],
  NamespaceSpec: ['1 finalizers []string'],
  ConfigMap: ['1 metadata ObjectMeta', '2 data map<string,string>', '3 binaryData map<string,bytes>', '4 immutable *bool'],
  Secret: ['1 metadata ObjectMeta', '2 data map<string,bytes>', '3 type string', '4 stringData map<string,string>', '5 immutable *bool'],
  ServiceAccount: ['1 metadata ObjectMeta', '2 secrets []ObjectReference', '3 imagePullSecrets []LocalObjectReference', '4 automountServiceAccountToken *bool'],
  ObjectReference: ['1 kind string', '2 namespace string', '3 name string', '4 uid string', '5 apiVersion string', '6 resourceVersion string', '7 fieldPath string'],
  LocalObjectReference: ['1 name string'],
  Service: ['1 metadata ObjectMeta', '2 spec ServiceSpec', '3 status -'],
  ServiceSpec: [
    '1 ports []ServicePort',
    '2 selector map<string,string>',
    '3 clusterIP string',
    '4 type string',
    '5 externalIPs []string',
    '7 sessionAffinity string',
    '8 loadBalancerIP string',
    '9 loadBalancerSourceRanges []string',
    '10 externalName string',
    '11 externalTrafficPolicy string',
    '12 healthCheckNodePort int32',
    '13 publishNotReadyAddresses bool',
  ],
  ServicePort: ['1 name string', '2 protocol string', '3 port *int32', '4 targetPort IntOrString', '5 nodePort int32', '6 appProtocol *string'],
  PodTemplateSpec: ['1 metadata ObjectMeta', '2 spec PodSpec'],
  PodSpec: [
    '2 containers []Container',
    '3 restartPolicy string',
    '4 terminationGracePeriodSeconds *int64',
    '5 activeDeadlineSeconds *int64',
    '6 dnsPolicy string',
    '7 nodeSelector map<string,string>',
    '8 serviceAccountName string',
    '9 serviceAccount string',
    '10 nodeName string',
    '11 hostNetwork bool',
    '12 hostPID bool',
    '13 hostIPC bool',
    '15 imagePullSecrets []LocalObjectReference',
    '16 hostname string',
    '17 subdomain string',
    '19 schedulerName string',
    '20 initContainers []Container',
    '21 automountServiceAccountToken *bool',
    '22 tolerations []Toleration',
    '24 priorityClassName string',
    '25 priority *int32',
    '29 runtimeClassName *string',
    '30 enableServiceLinks *bool',
    '31 preemptionPolicy *string',
  ],
  Toleration: ['1 key string', '2 operator string', '3 value string', '4 effect string', '5 tolerationSeconds *int64'],
  Container: [
    '1 name *string',
    '2 image string',
    '3 command []string',
    '4 args []string',
    '5 workingDir string',
    '6 ports []ContainerPort',
    '7 env []EnvVar',
    '8 resources ResourceRequirements',
    '13 terminationMessagePath string',
    '14 imagePullPolicy string',
    '16 stdin bool',
    '17 stdinOnce bool',
    '18 tty bool',
    '20 terminationMessagePolicy string',
    '24 restartPolicy *string',
  ],
  ContainerPort: ['1 name string', '2 hostPort int32', '3 containerPort *int32', '4 protocol string', '5 hostIP string'],
  EnvVar: ['1 name *string', '2 value string'],
  ResourceRequirements: ['1 limits map<string,Quantity>', '2 requests map<string,Quantity>'],
  ResourceQuota: ['1 metadata ObjectMeta', '2 spec ResourceQuotaSpec', '3 status -'],
  ResourceQuotaSpec: ['1 hard map<string,Quantity>', '2 scopes []string', '3 scopeSelector *ScopeSelector'],
  ScopeSelector: ['1 matchExpressions []ScopedResourceSelectorRequirement'],
  ScopedResourceSelectorRequirement: ['1 scopeName *string', '2 operator *string', '3 values []string'],

  // apps/v1
  Deployment: ['1 metadata ObjectMeta', '2 spec DeploymentSpec', '3 status -'],
  DeploymentSpec: [
    '1 replicas *int32',
    '2 selector *LabelSelector',
    '3 template PodTemplateSpec',
    '4 strategy DeploymentStrategy',
    '5 minReadySeconds int32',
    '6 revisionHistoryLimit *int32',
    '7 paused bool',
    '9 progressDeadlineSeconds *int32',
  ],
  DeploymentStrategy: ['1 type string', '2 rollingUpdate *RollingUpdateDeployment'],
  RollingUpdateDeployment: ['1 maxUnavailable *IntOrString', '2 maxSurge *IntOrString'],

  // batch/v1
  Job: ['1 metadata ObjectMeta', '2 spec JobSpec', '3 status -'],
  JobSpec: [
    '1 parallelism *int32',
    '2 completions *int32',
    '3 activeDeadlineSeconds *int64',
    '4 selector *LabelSelector',
    '5 manualSelector *bool',
    '6 template PodTemplateSpec',
    '7 backoffLimit *int32',
    '8 ttlSecondsAfterFinished *int32',
    '9 completionMode *string',
    '10 suspend *bool',
  ],
  CronJob: ['1 metadata ObjectMeta', '2 spec CronJobSpec', '3 status -'],
  CronJobSpec: [
    '1 schedule *string',
    '2 startingDeadlineSeconds *int64',
    '3 concurrencyPolicy string',
    '4 suspend *bool',
    '5 jobTemplate JobTemplateSpec',
    '6 successfulJobsHistoryLimit *int32',
    '7 failedJobsHistoryLimit *int32',
    '8 timeZone *string',
  ],
  JobTemplateSpec: ['1 metadata ObjectMeta', '2 spec JobSpec'],

  // autoscaling: what kubectl autoscale sends (v2 first, v1 when v2 is refused)
  HorizontalPodAutoscalerV2: ['1 metadata ObjectMeta', '2 spec HorizontalPodAutoscalerSpecV2', '3 status -'],
  HorizontalPodAutoscalerSpecV2: ['1 scaleTargetRef CrossVersionObjectReference', '2 minReplicas *int32', '3 maxReplicas *int32', '4 metrics []MetricSpec'],
  CrossVersionObjectReference: ['1 kind string', '2 name string', '3 apiVersion string'],
  MetricSpec: ['1 type string', '4 resource *ResourceMetricSource'],
  ResourceMetricSource: ['1 name string', '2 target MetricTarget'],
  MetricTarget: ['1 type string', '4 averageUtilization *int32'],
  HorizontalPodAutoscalerV1: ['1 metadata ObjectMeta', '2 spec HorizontalPodAutoscalerSpecV1', '3 status -'],
  HorizontalPodAutoscalerSpecV1: ['1 scaleTargetRef CrossVersionObjectReference', '2 minReplicas *int32', '3 maxReplicas *int32', '4 targetCPUUtilizationPercentage *int32'],

  // scheduling, policy, networking
  Eviction: ['1 metadata ObjectMeta', '2 deleteOptions *DeleteOptions'],
  PriorityClass: ['1 metadata ObjectMeta', '2 value *int32', '3 globalDefault bool', '4 description string', '5 preemptionPolicy *string'],
  PodDisruptionBudget: ['1 metadata ObjectMeta', '2 spec PodDisruptionBudgetSpec', '3 status -'],
  PodDisruptionBudgetSpec: ['1 minAvailable *IntOrString', '2 selector *LabelSelector', '3 maxUnavailable *IntOrString', '4 unhealthyPodEvictionPolicy *string'],
  Ingress: ['1 metadata ObjectMeta', '2 spec IngressSpec', '3 status -'],
  IngressSpec: ['1 defaultBackend *IngressBackend', '2 tls []IngressTLS', '3 rules []IngressRule', '4 ingressClassName *string'],
  IngressTLS: ['1 hosts []string', '2 secretName string'],
  IngressRule: ['1 host string', '2 ingressRuleValue ~IngressRuleValue'],
  IngressRuleValue: ['1 http *HTTPIngressRuleValue'],
  HTTPIngressRuleValue: ['1 paths []HTTPIngressPath'],
  HTTPIngressPath: ['1 path string', '2 backend IngressBackend', '3 pathType *string'],
  IngressBackend: ['4 service *IngressServiceBackend'],
  IngressServiceBackend: ['1 name string', '2 port ServiceBackendPort'],
  ServiceBackendPort: ['1 name string', '2 number int32'],

  // rbac.authorization.k8s.io/v1
  Role: ['1 metadata ObjectMeta', '2 rules []PolicyRule'],
  ClusterRole: ['1 metadata ObjectMeta', '2 rules []PolicyRule', '3 aggregationRule *AggregationRule'],
  PolicyRule: ['1 verbs []string', '2 apiGroups []string', '3 resources []string', '4 resourceNames []string', '5 nonResourceURLs []string'],
  AggregationRule: ['1 clusterRoleSelectors []LabelSelector'],
  RoleBinding: ['1 metadata ObjectMeta', '2 subjects []Subject', '3 roleRef RoleRef'],
  Subject: ['1 kind string', '2 apiGroup string', '3 name string', '4 namespace string'],
  RoleRef: ['1 apiGroup *string', '2 kind *string', '3 name *string'],

  // authorization.k8s.io/v1 and authentication.k8s.io: what `kubectl auth` and `create token` send
  SelfSubjectAccessReview: ['1 metadata ObjectMeta', '2 spec SelfSubjectAccessReviewSpec', '3 status -'],
  SelfSubjectAccessReviewSpec: ['1 resourceAttributes *ResourceAttributes', '2 nonResourceAttributes *NonResourceAttributes'],
  ResourceAttributes: ['1 namespace string', '2 verb string', '3 group string', '4 version string', '5 resource string', '6 subresource string', '7 name string'],
  NonResourceAttributes: ['1 path string', '2 verb string'],
  SelfSubjectRulesReview: ['1 metadata ObjectMeta', '2 spec SelfSubjectRulesReviewSpec', '3 status -'],
  SelfSubjectRulesReviewSpec: ['1 namespace string'],
  SelfSubjectReview: ['1 metadata ObjectMeta', '2 status -'],
  TokenRequest: ['1 metadata ObjectMeta', '2 spec TokenRequestSpec', '3 status -'],
  TokenRequestSpec: ['1 audiences []string', '3 boundObjectRef *BoundObjectReference', '4 expirationSeconds *int64'],
  BoundObjectReference: ['1 kind string', '2 apiVersion string', '3 name string', '4 uid string'],
};

export interface FieldDef {
  name: string;
  /** Scalar name, message name, "map", or "drop". */
  type: string;
  repeated: boolean;
  keepZero: boolean;
  inline: boolean;
  mapValue?: string;
}

export const messages: Record<string, Map<number, FieldDef>> = {};
for (const [msg, entries] of Object.entries(defs)) {
  const m = new Map<number, FieldDef>();
  for (const e of entries) {
    const [num, name, rawType] = e.split(' ');
    let t = rawType;
    const def: FieldDef = { name, type: '', repeated: false, keepZero: false, inline: false };
    if (t === '-') t = 'drop';
    if (t.startsWith('[]')) {
      def.repeated = true;
      t = t.slice(2);
    }
    if (t.startsWith('*')) {
      def.keepZero = true;
      t = t.slice(1);
    }
    if (t.startsWith('~')) {
      def.inline = true;
      t = t.slice(1);
    }
    const map = t.match(/^map<string,(\w+)>$/);
    if (map) {
      def.type = 'map';
      def.mapValue = map[1];
    } else def.type = t;
    m.set(Number(num), def);
  }
  messages[msg] = m;
}

/** The top-level message of each kind this server decodes, by apiVersion/kind. */
export const kindMessages: Record<string, string> = {
  'v1/Namespace': 'Namespace',
  'v1/ConfigMap': 'ConfigMap',
  'v1/Secret': 'Secret',
  'v1/ServiceAccount': 'ServiceAccount',
  'v1/Service': 'Service',
  'v1/ResourceQuota': 'ResourceQuota',
  'apps/v1/Deployment': 'Deployment',
  'batch/v1/Job': 'Job',
  'batch/v1/CronJob': 'CronJob',
  'scheduling.k8s.io/v1/PriorityClass': 'PriorityClass',
  'policy/v1/PodDisruptionBudget': 'PodDisruptionBudget',
  'networking.k8s.io/v1/Ingress': 'Ingress',
  'meta.k8s.io/v1/DeleteOptions': 'DeleteOptions',
  'policy/v1/Eviction': 'Eviction',
  'autoscaling/v2/HorizontalPodAutoscaler': 'HorizontalPodAutoscalerV2',
  'autoscaling/v1/HorizontalPodAutoscaler': 'HorizontalPodAutoscalerV1',
  'v1/DeleteOptions': 'DeleteOptions',
  'rbac.authorization.k8s.io/v1/Role': 'Role',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'ClusterRole',
  'rbac.authorization.k8s.io/v1/RoleBinding': 'RoleBinding',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'RoleBinding',
  'authorization.k8s.io/v1/SelfSubjectAccessReview': 'SelfSubjectAccessReview',
  'authorization.k8s.io/v1/SelfSubjectRulesReview': 'SelfSubjectRulesReview',
  'authentication.k8s.io/v1/SelfSubjectReview': 'SelfSubjectReview',
  'authentication.k8s.io/v1beta1/SelfSubjectReview': 'SelfSubjectReview',
  'authentication.k8s.io/v1/TokenRequest': 'TokenRequest',
};
