// The Debian package (packaging/deb.sh, `make deb`): built from this checkout's dist/ and addon, its
// control fields and file list checked, lintian run, then installed with dpkg into a throwaway root
// (its own dpkg database; nothing of the host is touched, the host's dpkg never hears of it) and the
// installed sipalg run from there; finally purged again.

import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { helpText } from '../src/cli/commands.js'

const ROOT = new URL('..', import.meta.url).pathname
const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version

function sh (cmd: string, args: string[], opts: { env?: NodeJS.ProcessEnv, input?: string } = {}): { code: number | null, out: string, err: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8', cwd: ROOT, env: { ...process.env, ...opts.env }, input: opts.input ?? '', timeout: 120_000, maxBuffer: 64 << 20 })
  return { code: r.status, out: r.stdout, err: r.stderr }
}

const work = mkdtempSync(join(tmpdir(), 'sipalg-package-'))
t.teardown(() => { rmSync(work, { recursive: true, force: true }) })

const built = sh('bash', ['packaging/deb.sh', work])
const deb = join(work, `sipalg_${version}_amd64.deb`)

t.test('make deb builds sipalg_<version>_amd64.deb', async t => {
  t.equal(built.code, 0, built.err)
  t.equal(built.out.trim(), deb)
  t.ok(existsSync(deb))
})

t.test('control fields', async t => {
  const field = (name: string): string => sh('dpkg-deb', ['-f', deb, name]).out.trim()
  t.equal(field('Package'), 'sipalg')
  t.equal(field('Version'), version)
  t.equal(field('Architecture'), 'amd64')
  t.match(field('Maintainer'), /<.+@.+>/)
  const depends = field('Depends').split(/,\s*/)
  t.ok(depends.includes('nodejs (>= 20)'), `nodejs 20 or later (${depends.join(', ')})`)
  for (const lib of ['libnetfilter-queue1', 'libnftnl11', 'libmnl0', 'libc6']) t.ok(depends.some(d => d.startsWith(`${lib} (>= `)), `${lib} from dpkg-shlibdeps`)
  for (const tool of ['iptables', 'nftables', 'conntrack']) t.ok(depends.includes(tool), tool)
  t.ok(Number(field('Installed-Size')) > 1000, 'Installed-Size in KiB')
  t.equal(sh('dpkg-deb', ['-I', deb, 'conffiles']).out, '/etc/sipalg/sipalg.yaml\n', 'the config is a conffile')
  for (const script of ['postinst', 'prerm', 'postrm']) {
    const text = sh('dpkg-deb', ['-I', deb, script]).out
    t.match(text, /^#!\/bin\/sh\n/, `${script} is a shell script`)
    t.notMatch(text.replace(/^#.*$/gm, ''), /\b(start|enable|restart)\b|rules install|iptables|nft /, `${script} never starts, enables or installs rules`)
  }
  t.match(sh('dpkg-deb', ['-I', deb, 'postinst']).out, /systemctl --system daemon-reload/)
})

t.test('file list', async t => {
  const files = sh('dpkg-deb', ['-c', deb]).out.split('\n').filter(l => l !== '').map(l => {
    const cols = l.split(/\s+/)
    return { mode: cols[0], owner: cols[1], path: cols.slice(5).join(' ').replace(/^\.\//, '/') }
  })
  const has = (p: string): { mode: string } | undefined => files.find(f => f.path === p)
  for (const p of ['/usr/bin/sipalg', '/usr/lib/sipalg/dist/src/cli/main.js', '/usr/lib/sipalg/dist/src/hep/sender.js',
    '/usr/lib/sipalg/native/build/Release/sipalg_native.node', '/usr/lib/sipalg/iptables/sipalg-rules.sh', '/usr/lib/sipalg/package.json',
    '/usr/lib/sipalg/node_modules/yaml/package.json', '/usr/lib/sipalg/node_modules/pino/package.json', '/lib/systemd/system/sipalg.service',
    '/etc/sipalg/sipalg.yaml', '/usr/share/man/man8/sipalg.8.gz', '/usr/share/man/man5/sipalg.yaml.5.gz',
    '/usr/share/doc/sipalg/copyright', '/usr/share/doc/sipalg/changelog.gz']) t.ok(has(p), p)
  t.equal(has('/usr/bin/sipalg')?.mode, '-rwxr-xr-x')
  t.equal(has('/usr/lib/sipalg/iptables/sipalg-rules.sh')?.mode, '-rwxr-xr-x')
  t.ok(files.every(f => f.owner === 'root/root'), 'everything belongs to root')
  for (const dev of ['typescript', 'tap', '@types', 'node-addon-api']) t.notOk(files.some(f => f.path.startsWith(`/usr/lib/sipalg/node_modules/${dev}/`)), `no ${dev} (development only)`)
  t.notOk(files.some(f => /\.(ts|map)$/.test(f.path) || f.path.includes('/test/')), 'no sources, source maps or tests')
})

t.test('lintian: no error or warning', async t => {
  const r = sh('lintian', ['--fail-on', 'error,warning', deb])
  t.equal(r.out.split('\n').filter(l => /^[EW]: /.test(l)).join('\n'), '', 'lintian tags of severity error or warning')
  t.equal(r.code, 0, r.err)
})

t.test('installed into a throwaway root, the installed sipalg runs', async t => {
  const root = join(work, 'root')
  mkdirSync(join(root, 'var/lib/dpkg/info'), { recursive: true })
  mkdirSync(join(root, 'var/lib/dpkg/updates'), { recursive: true })
  writeFileSync(join(root, 'var/lib/dpkg/status'), '')
  // Its own database knows none of the dependencies: --force-depends. Maintainer scripts run
  // outside a chroot with DPKG_ROOT set, which they check before talking to systemd.
  const dpkg = (...args: string[]): ReturnType<typeof sh> =>
    sh('dpkg', [`--root=${root}`, `--log=${join(work, 'dpkg.log')}`, '--force-not-root', '--force-depends', '--force-script-chrootless', ...args])
  const inst = dpkg('-i', deb)
  t.equal(inst.code, 0, inst.err)
  t.match(inst.out, `Setting up sipalg (${version})`)
  const bin = join(root, 'usr/bin/sipalg')
  const v = sh(bin, ['--version'])
  t.equal(v.out, `sipalg ${version}\n`, `installed sipalg --version ${v.err}`)
  const doctor = sh(bin, ['doctor', '--help'])
  t.equal(doctor.code, 0, doctor.err)
  t.equal(doctor.out, helpText('doctor'), 'installed sipalg doctor --help: the same help as the checkout')
  // The installed dependencies and addon load: a config file is read with the packaged yaml module...
  writeFileSync(join(work, 'bad.yaml'), 'publik: 203.0.113.1\n')
  const cfg = sh(bin, ['run', '--config', join(work, 'bad.yaml')])
  t.equal(cfg.code, 78, 'a config key error, after reading the YAML')
  t.match(cfg.err, /E103: config key "publik" is not a known setting/)
  // ...and the stripped addon is still a loadable Node addon.
  const addon = sh(process.execPath, ['-e', `require(${JSON.stringify(join(root, 'usr/lib/sipalg/native/build/Release/sipalg_native.node'))})`])
  t.equal(addon.code, 0, `the packaged addon loads: ${addon.err}`)
  t.equal(readFileSync(join(root, 'etc/sipalg/sipalg.yaml'), 'utf8'), readFileSync(join(ROOT, 'sipalg.example.yaml'), 'utf8'))
  t.match(readFileSync(join(root, 'lib/systemd/system/sipalg.service'), 'utf8'), /^ExecStart=\/usr\/bin\/sipalg run --config \/etc\/sipalg\/sipalg.yaml$/m)
  const man = sh('man', ['-l', '-P', 'cat', join(root, 'usr/share/man/man8/sipalg.8.gz')], { env: { MANWIDTH: '100' } })
  t.match(man.out, /SIPALG\(8\)/, 'the installed man page renders')
  t.not(sh('dpkg-query', ['-W', 'sipalg']).code, 0, 'the host\'s dpkg knows nothing of it')
  const purge = dpkg('-P', 'sipalg')
  t.equal(purge.code, 0, purge.err)
  t.notOk(existsSync(bin), 'removed')
  t.notOk(existsSync(join(root, 'etc/sipalg/sipalg.yaml')), 'purged: the conffile too')
})
