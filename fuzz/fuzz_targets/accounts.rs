//! The accounts a package's files make: any `passwd`, `group` and `sysusers.d` text must give
//! accounts or an error, never a panic or an endless allocation.
#![no_main]

use bake::debian::accounts::Accounts;

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let mut parts = text.splitn(3, '\u{0}');
    let (passwd, group, sysusers) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let Ok(mut accounts) = Accounts::parse(passwd, group) else { return };
    if accounts.apply_sysusers(&[("fuzz.conf".to_string(), sysusers.to_string())]).is_ok() {
        let _ = (accounts.passwd(), accounts.group_file(), accounts.shadow(1), accounts.gshadow());
    }
});
