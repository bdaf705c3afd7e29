"""Unit tests of the crash-safety parts of the installer: fileops.py (interrupted writes are
recognisable), journal.py (an interrupted change is undone from its journal), steps.py (the
crash-safe order), and the small helpers around them (ase_conf.py, linemap.py, include_arg).

Run: python3 -m unittest discover -s tests/install
"""

import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "scripts", "install"))

import ase_conf  # noqa: E402
import fileops  # noqa: E402
import linemap  # noqa: E402
from journal import JournalError, StateFile, rollback_pending, sha256  # noqa: E402
from nginx_conf import Config  # noqa: E402
from patch import Options, include_arg  # noqa: E402
from steps import order, staged_file  # noqa: E402


class PartialWrite(unittest.TestCase):
    def test_every_cut_of_an_in_place_write_is_recognised(self):
        old, new = b"events {}\nhttp {}\n", b"load_module x;\nevents {}\nhttp { include a; }\n"
        for o, n in ((old, new), (new, old)):
            for k in range(len(n) + 1):
                cut = n[:k] + o[k:]
                self.assertTrue(fileops.is_partial_write(cut, o, n) or cut == n, k)

    def test_other_content_is_not(self):
        self.assertFalse(fileops.is_partial_write(b"someone else's", b"old bytes", b"new bytes"))
        self.assertFalse(fileops.is_partial_write(b"old bytes plus", b"old bytes", b"new bytes"))


class Rollback(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, self.dir)
        self.backups = os.path.join(self.dir, "backups")

    def file(self, name, data):
        p = os.path.join(self.dir, name)
        with open(p, "wb") as f:
            f.write(data)
        return p

    def step(self, path, before, after, backup=None, **kw):
        return dict({"path": path, "before": sha256(before), "after": sha256(after), "backup": backup,
                     "in_place": False}, **kw)

    def test_undoes_writes_and_creations_and_leftovers(self):
        conf = self.file("nginx.conf", b"new\n")
        backup = self.file("nginx.conf.bak", b"old\n")
        created = self.file("ase.conf", b"ase\n")
        leftover = self.file(".ase.conf.ngx-ase-tmp", b"half")
        pending = {"command": "install", "backup_root": self.backups, "dirs": [], "steps": [
            self.step(conf, b"old\n", b"mid\n", backup), self.step(created, None, b"ase\n"),
            self.step(conf, b"mid\n", b"new\n", backup)]}
        self.assertEqual(sorted(rollback_pending(pending)), sorted([conf, created]))
        self.assertEqual(fileops.read(conf), b"old\n")
        self.assertFalse(os.path.exists(created) or os.path.exists(leftover))
        # Undoing again (killed during the undo) is harmless.
        rollback_pending(pending)
        self.assertEqual(fileops.read(conf), b"old\n")

    def test_half_done_in_place_write(self):
        old, new = b"a;\nb;\nc;\n", b"a;\n# x\nb;\nc;\n"
        conf = self.file("nginx.conf", new[:5] + old[5:])
        os.link(conf, os.path.join(self.dir, "link"))
        steps = [self.step(conf, old, new, self.file("bak", old), in_place=True,
                           old_copy=self.file("0.old", old), new_copy=self.file("0.new", new))]
        rollback_pending({"command": "install", "backup_root": self.backups, "dirs": [], "steps": steps})
        self.assertEqual(fileops.read(conf), old)
        self.assertEqual(os.stat(conf).st_nlink, 2, "restored in place: the hard link holds")

    def test_refuses_a_file_changed_by_someone_else(self):
        conf = self.file("nginx.conf", b"the operator's\n")
        steps = [self.step(conf, b"old\n", b"new\n", self.file("bak", b"old\n"))]
        with self.assertRaises(JournalError):
            rollback_pending({"command": "install", "backup_root": self.backups, "dirs": [], "steps": steps})
        self.assertEqual(fileops.read(conf), b"the operator's\n")

    def test_removes_the_directories_it_created(self):
        d = os.path.join(self.dir, "mods", "sub")
        os.makedirs(d)
        rollback_pending({"command": "install", "backup_root": self.backups, "steps": [],
                          "dirs": [os.path.join(self.dir, "mods"), d]})
        self.assertFalse(os.path.exists(os.path.join(self.dir, "mods")))


class StateFiles(unittest.TestCase):
    def test_one_per_main_file_and_round_trip(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        a, b = StateFile(os.path.join(d, "nginx.conf")), StateFile(os.path.join(d, "nginx-canary.conf"))
        self.assertNotEqual(a.path, b.path)
        st = {"modified": [{"path": os.path.join(d, "nginx.conf"), "original_sha256": "x",
                            "insertions": [(3, b"# y\n", 1)]}],
              "created": [{"path": os.path.join(d, "ase.conf"), "stage": 2, "written": "w"}],
              "modules": [{"path": "/m/x.so"}], "dirs": []}
        a.save(st)
        self.assertEqual(a.load()["state"], st)
        self.assertEqual([o["main"] for o in b.others()], [a.conf])
        self.assertEqual(b.load(), {"state": None, "pending": None})


    def test_reads_the_state_of_an_install_before_the_journal(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        legacy = {"format": 1, "modified": [{"path": "nginx.conf", "original_sha256": "x", "insertions": [
            [0, "# ngx-ase: managed begin (load_module)\n", ], [9, "# ngx-ase: managed begin (location /)\n"]]}],
            "created": [{"path": "ase.conf"}], "modules": [{"path": "/m/x.so"}]}
        with open(os.path.join(d, ".ngx-ase-state.json"), "w") as f:
            json.dump(legacy, f)
        sf = StateFile(os.path.join(d, "nginx.conf"))
        st = sf.load()["state"]
        self.assertEqual([e[2] for e in st["modified"][0]["insertions"]], [1, 3])
        self.assertEqual(st["created"], [{"path": os.path.join(d, "ase.conf"), "stage": 2}])
        self.assertIsNone(StateFile(os.path.join(d, "other.conf")).load()["state"])
        sf.save(st)
        self.assertFalse(os.path.exists(os.path.join(d, ".ngx-ase-state.json")), "replaced by the new file")
        self.assertEqual(sf.load()["state"]["modules"], [{"path": "/m/x.so"}])


class Order(unittest.TestCase):
    def test_a_file_before_the_lines_that_need_it(self):
        base = b"events {}\nhttp {\n}\n"
        edits = [(0, b"load_module m.so;\n", 1), (17, b"include ase.conf;\n", 3)]
        targets = staged_file("/c/nginx.conf", base, edits) + [(2, "/c/ase.conf", b"ase_server x;\n", False),
                                                              (0, "/m/m.so", b"ELF", True)]
        files = {"/c/nginx.conf": base}
        steps = order(targets, files.get, skip_unchanged=True)
        self.assertEqual([s.path for s in steps], ["/m/m.so", "/c/nginx.conf", "/c/ase.conf", "/c/nginx.conf"])
        self.assertIn(b"load_module", steps[1].after)
        self.assertNotIn(b"include", steps[1].after)
        self.assertEqual(steps[3].before, steps[1].after)

    def test_nothing_for_a_file_already_as_asked(self):
        files = {"/c/a": b"x"}
        self.assertEqual(order([(1, "/c/a", b"y", False), (3, "/c/a", b"x", False)], files.get, True), [])


class AseConf(unittest.TestCase):
    def opts(self, url):
        return Options(modules_dir="/m", servers=[(url, False)])

    def test_operator_lines_kept_managed_lines_replaced(self):
        old = ase_conf.ase_conf_text(self.opts("http://a:1")).encode()
        new = ase_conf.ase_conf_text(self.opts("http://b:2")).encode()
        cur = old + b"ase_keepalive 8;\n"
        merged = ase_conf.merge(cur, old, new, "ase.conf")
        self.assertEqual(merged, new + b"ase_keepalive 8;\n")
        self.assertEqual(ase_conf.merge(merged, merged, new, "ase.conf"), merged)

    def test_edited_managed_lines_refused_with_the_diff(self):
        old = ase_conf.ase_conf_text(self.opts("http://a:1")).encode()
        cur = old.replace(b"http://a:1", b"http://z:9")
        with self.assertRaises(ase_conf.AseConfEdited) as cm:
            ase_conf.merge(cur, old, old, "ase.conf")
        self.assertIn("-ase_server http://a:1;", str(cm.exception))
        self.assertIn("+ase_server http://z:9;", str(cm.exception))


class LineMap(unittest.TestCase):
    def test_lines_of_the_operator_file(self):
        old, new = b"a\nb\nc\n", b"a\n# ins\nx\nb\nc\n"
        self.assertEqual(linemap.map_line(old, new, 4), (2, False))
        self.assertEqual(linemap.map_line(old, new, 2), (2, True))
        msg = linemap.rewrite("nginx: [emerg] bad in /f:5\nnginx: [emerg] other in /g:5", {"/f": (old, new)})
        self.assertEqual(msg, "nginx: [emerg] bad in /f:3\nnginx: [emerg] other in /g:5")


class IncludeArg(unittest.TestCase):
    def test_glob_characters_in_the_path_are_bracketed(self):
        d = tempfile.mkdtemp(suffix="[x]*?")
        self.addCleanup(shutil.rmtree, d)
        main = os.path.join(d, "nginx.conf")
        with open(main, "w") as f:
            f.write("events {}\n")
        cfg = Config(main)
        target = os.path.join(d, "ase.conf")
        arg = include_arg(cfg, target)
        self.assertIn("[[]x]", arg)
        import glob
        with open(target, "w"):
            pass
        self.assertEqual(glob.glob(arg), [target])

    def test_plain_paths_stay_relative(self):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        with open(os.path.join(d, "nginx.conf"), "w") as f:
            f.write("events {}\n")
        self.assertEqual(include_arg(Config(os.path.join(d, "nginx.conf")), os.path.join(d, "ase.conf")), "ase.conf")


if __name__ == "__main__":
    unittest.main()
