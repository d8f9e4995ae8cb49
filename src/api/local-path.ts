/**
 * The names the built-in local-path storage shares across layers: the PersistentVolume controller
 * provisions under the root for the node the scheduler selected, and that node removes the
 * directory (then the finalizer) once a volume with reclaim policy Delete is deleted.
 */
export const LOCAL_PATH_PROVISIONER = 'kubicle.io/local-path';
export const LOCAL_PATH_ROOT = '/var/lib/kubicle/local-path';
/** Holds a provisioned volume until its node has removed the directory. */
export const LOCAL_PATH_FINALIZER = 'kubicle.io/local-path-cleanup';
/** Set on a claim of a WaitForFirstConsumer class by the scheduler: the node its first pod goes to. */
export const SELECTED_NODE_ANNOTATION = 'volume.kubernetes.io/selected-node';
