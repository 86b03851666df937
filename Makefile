# make install [PREFIX=/usr/local] [DESTDIR=] [BIN=target/release/lipost]
PREFIX ?= /usr/local
DESTDIR ?=
BIN ?= target/release/lipost
SYSCONFDIR ?= /etc
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
TMPFILESDIR ?= $(PREFIX)/lib/tmpfiles.d

.PHONY: all build install uninstall check-unit

all: build

build:
	cargo build --release --locked

$(BIN):
	cargo build --release --locked

install: $(BIN)
	install -Dm0755 $(BIN) $(DESTDIR)$(PREFIX)/bin/lipost
	sed 's#/usr/local/bin/lipost#$(PREFIX)/bin/lipost#; s#/etc/lipost#$(SYSCONFDIR)/lipost#g; s#/usr/local/share/doc#$(PREFIX)/share/doc#' systemd/lipost.service > lipost.service.tmp
	install -Dm0644 lipost.service.tmp $(DESTDIR)$(UNITDIR)/lipost.service
	rm -f lipost.service.tmp
	install -Dm0644 systemd/lipost.sysusers $(DESTDIR)$(SYSUSERSDIR)/lipost.conf
	install -Dm0644 systemd/lipost.tmpfiles $(DESTDIR)$(TMPFILESDIR)/lipost.conf
	install -d -m0755 $(DESTDIR)$(SYSCONFDIR)/lipost
	test -e $(DESTDIR)$(SYSCONFDIR)/lipost/config.toml || install -m0644 systemd/config.example.toml $(DESTDIR)$(SYSCONFDIR)/lipost/config.toml
	test -e $(DESTDIR)$(SYSCONFDIR)/lipost/client-secret || install -m0600 /dev/null $(DESTDIR)$(SYSCONFDIR)/lipost/client-secret
	install -d $(DESTDIR)$(PREFIX)/share/bash-completion/completions $(DESTDIR)$(PREFIX)/share/zsh/site-functions $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d $(DESTDIR)$(PREFIX)/share/man/man1
	$(BIN) completions bash > $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lipost
	$(BIN) completions zsh > $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_lipost
	$(BIN) completions fish > $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/lipost.fish
	$(BIN) man > $(DESTDIR)$(PREFIX)/share/man/man1/lipost.1
	install -Dm0644 README.md $(DESTDIR)$(PREFIX)/share/doc/lipost/README.md

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/lipost $(DESTDIR)$(UNITDIR)/lipost.service \
	  $(DESTDIR)$(SYSUSERSDIR)/lipost.conf $(DESTDIR)$(TMPFILESDIR)/lipost.conf \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/lipost \
	  $(DESTDIR)$(PREFIX)/share/zsh/site-functions/_lipost \
	  $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d/lipost.fish \
	  $(DESTDIR)$(PREFIX)/share/man/man1/lipost.1
	rm -rf $(DESTDIR)$(PREFIX)/share/doc/lipost

# The checks CI runs: verify the unit (against a built binary) and its exposure score.
check-unit: $(BIN)
	sed 's#/usr/local/bin/lipost#$(abspath $(BIN))#' systemd/lipost.service > $(CURDIR)/target/lipost.service
	systemd-analyze verify $(CURDIR)/target/lipost.service 2>&1 | tee target/verify.log; test ! -s target/verify.log
	systemd-analyze security --offline=true --threshold=15 $(CURDIR)/target/lipost.service | tail -1
