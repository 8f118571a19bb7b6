// tap's coverage map: which source files a test file's coverage counts for. End-to-end tests
// (their code runs in daemons inside network namespaces, as compiled dist/ files) count for
// nothing; every other test counts for all of src/. The thresholds in package.json apply to that.
export default function coverageMap (testFile) {
  if (/^test\/(e2e|netfilter)\/|^test\/(lab|rules|package|doctor)\.test\.ts$/.test(testFile)) return null
  return 'src/**/*.ts'
}
