/** What /version reports: Kubernetes 1.30 (the middle of the kubectl versions we serve, fewest skew warnings). */
export const kubeVersion = { major: '1', minor: '30', gitVersion: 'v1.30.0-kubicle.0' };

export function versionInfo() {
  return {
    ...kubeVersion,
    gitCommit: 'kubicle',
    gitTreeState: 'clean',
    buildDate: '2026-11-23T00:00:00Z',
    goVersion: `node${process.versions.node}`,
    compiler: 'tsc',
    platform: `${process.platform}/${process.arch === 'x64' ? 'amd64' : process.arch}`,
  };
}
