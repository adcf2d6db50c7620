//! The web UI's strings, English and Simplified Chinese, in one catalogue. The language
//! comes from the `lang` cookie (set by the switch in the page header), else from
//! `Accept-Language`, else English.

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    En,
    Zh,
}

impl Lang {
    /// The `lang` attribute / cookie value.
    pub fn code(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::Zh => "zh-CN",
        }
    }

    /// From a cookie value or a language tag.
    pub fn parse(s: &str) -> Option<Self> {
        let s = s.trim().to_ascii_lowercase();
        if s.starts_with("zh") {
            Some(Self::Zh)
        } else if s.starts_with("en") {
            Some(Self::En)
        } else {
            None
        }
    }

    /// The best of ours for an `Accept-Language` header (by quality, then order).
    pub fn negotiate(accept: &str) -> Self {
        let mut best: Option<(f32, Self)> = None;
        for part in accept.split(',') {
            let mut pieces = part.split(';');
            let tag = pieces.next().unwrap_or("");
            let q = pieces
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            if let Some(lang) = Self::parse(tag)
                && best.is_none_or(|(b, _)| q > b)
            {
                best = Some((q, lang));
            }
        }
        best.map_or(Self::En, |(_, l)| l)
    }

    /// The string for `key` (the key itself when missing, which a test rules out).
    pub fn t(self, key: &str) -> &'static str {
        CATALOGUE
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or("?", |(_, en, zh)| match self {
                Self::En => en,
                Self::Zh => zh,
            })
    }
}

/// key, English, 简体中文.
pub const CATALOGUE: &[(&str, &str, &str)] = &[
    ("app", "linksnap", "linksnap"),
    ("nav.links", "Links", "链接"),
    ("nav.tags", "Tags", "标签"),
    ("nav.settings", "Settings", "设置"),
    ("nav.logout", "Sign out", "退出"),
    ("nav.lang", "中文", "English"),
    ("login.title", "Sign in", "登录"),
    ("login.name", "User name", "用户名"),
    ("login.password", "Password", "密码"),
    ("login.submit", "Sign in", "登录"),
    (
        "login.failed",
        "Wrong user name or password.",
        "用户名或密码错误。",
    ),
    (
        "login.limited",
        "Too many attempts. Wait a minute and try again.",
        "尝试次数过多，请一分钟后再试。",
    ),
    ("add.title", "Save links", "保存链接"),
    (
        "add.urls",
        "One or more URLs, one per line",
        "一个或多个网址，每行一个",
    ),
    (
        "add.tags",
        "Tags (comma-separated, nested with /)",
        "标签（逗号分隔，用 / 表示层级）",
    ),
    ("add.submit", "Save", "保存"),
    (
        "add.saved",
        "Saved; the capture is queued.",
        "已保存，正在排队抓取。",
    ),
    (
        "add.problems",
        "These lines were not saved; fix them and save again. Lines saved:",
        "以下各行未保存，请修改后再次保存。已保存的行数：",
    ),
    (
        "add.bookmarklet",
        "Bookmarklet: drag to your bookmarks bar",
        "书签小工具：拖到书签栏",
    ),
    (
        "list.search",
        "Search the text of every page",
        "搜索所有网页的文字",
    ),
    (
        "list.filter",
        "Tag filter: rust, lang AND NOT go, a OR b, UNTAGGED",
        "标签筛选：rust、lang AND NOT go、a OR b、UNTAGGED",
    ),
    ("list.go", "Search", "搜索"),
    ("list.empty", "Nothing here yet.", "这里还没有内容。"),
    ("list.total", "links", "个链接"),
    ("list.prev", "Newer", "较新"),
    ("list.next", "Older", "较旧"),
    (
        "list.selected",
        "With the selected links:",
        "对选中的链接：",
    ),
    ("list.addtag", "Add tag", "添加标签"),
    ("list.removetag", "Remove tag", "移除标签"),
    ("list.apply", "Apply", "应用"),
    ("status.queued", "queued", "排队中"),
    ("status.capturing", "capturing", "抓取中"),
    ("status.ok", "saved", "已保存"),
    ("status.failed", "failed", "失败"),
    ("link.versions", "Versions", "版本"),
    ("link.snapshot", "Snapshot", "快照"),
    ("link.readable", "Readable text", "正文"),
    (
        "link.diff",
        "Compare with the previous version",
        "与上一版本比较",
    ),
    ("link.resources", "Resources", "资源"),
    ("link.screenshot", "Screenshot", "截图"),
    ("link.pdf", "PDF", "PDF"),
    ("link.share", "Public share links", "公开分享链接"),
    ("link.share_create", "Create a share link", "创建分享链接"),
    (
        "link.share_new",
        "Anyone with this address can open the snapshot until you revoke it; copy it now, it is not shown again:",
        "任何拿到此地址的人都能打开快照，直到你撤销；请立即复制，它不会再次显示：",
    ),
    ("link.recapture", "Capture again", "重新抓取"),
    ("link.delete", "Delete", "删除"),
    ("link.edit", "Save changes", "保存修改"),
    ("link.title", "Title", "标题"),
    ("link.note", "Note", "备注"),
    ("link.tags", "Tags", "标签"),
    ("link.favourite", "Favourite", "收藏"),
    ("link.unread", "Unread", "未读"),
    ("link.original", "Original", "原网址"),
    ("link.added", "Added", "添加于"),
    ("link.failure", "Why it failed", "失败原因"),
    ("link.nosnapshot", "No snapshot yet.", "还没有快照。"),
    ("res.url", "Address", "地址"),
    ("res.kind", "Kind", "类型"),
    ("res.outcome", "Outcome", "结果"),
    ("res.bytes", "Bytes", "字节"),
    ("diff.same", "The text did not change.", "文字没有变化。"),
    ("tags.title", "Tags", "标签"),
    ("tags.rename", "Rename", "重命名"),
    ("tags.merge", "Merge into", "合并到"),
    ("tags.delete", "Delete", "删除"),
    ("tags.to", "New name", "新名称"),
    ("tags.empty", "No tags yet.", "还没有标签。"),
    ("settings.title", "Settings", "设置"),
    ("settings.tokens", "API tokens", "API 令牌"),
    ("settings.token_name", "Token name", "令牌名称"),
    ("settings.create", "Create", "创建"),
    ("settings.revoke", "Revoke", "撤销"),
    (
        "settings.new_token",
        "Copy this token now; it is not shown again:",
        "请立即复制此令牌，它不会再次显示：",
    ),
    ("settings.users", "Users", "用户"),
    ("settings.admin", "Administrator", "管理员"),
    ("settings.add_user", "Add user", "添加用户"),
    ("settings.last_used", "last used", "最近使用"),
    ("settings.password", "Password", "密码"),
    ("settings.password_current", "Current password", "当前密码"),
    ("settings.password_new", "New password", "新密码"),
    (
        "settings.password_revoke_tokens",
        "Also revoke my API tokens",
        "同时撤销我的 API 令牌",
    ),
    (
        "settings.password_note",
        "Every session ends, this one too. API tokens keep working unless you revoke them here.",
        "所有会话都将结束（包括当前会话）。除非在此撤销，API 令牌仍然有效。",
    ),
    ("settings.password_change", "Change password", "修改密码"),
    (
        "settings.password_wrong",
        "The current password is not right; nothing was changed.",
        "当前密码不正确；未做任何更改。",
    ),
    (
        "login.password_kept",
        "Password changed. Sign in again; your API tokens still work.",
        "密码已修改。请重新登录；你的 API 令牌仍然有效。",
    ),
    (
        "login.password_revoked",
        "Password changed. Sign in again; your API tokens were revoked.",
        "密码已修改。请重新登录；你的 API 令牌已被撤销。",
    ),
    ("settings.never", "never", "从未"),
    ("settings.mail", "Mail ingest", "邮件收录"),
    ("settings.shares", "Share links", "分享链接"),
    (
        "settings.no_shares",
        "No share links. Make one on a link's page.",
        "没有分享链接。可在链接页面创建。",
    ),
    ("settings.remove_user", "Remove", "删除"),
    ("share.latest", "latest version", "最新版本"),
    ("nav.io", "Import/export", "导入/导出"),
    ("io.title", "Import and export", "导入与导出"),
    ("io.import", "Import bookmarks", "导入书签"),
    (
        "io.import_help",
        "A browser's bookmarks file (Netscape HTML), a JSON export of linksnap, Pinboard or linkding, or a list of URLs. One transaction: a file that does not parse imports nothing.",
        "浏览器书签文件（Netscape HTML）、linksnap / Pinboard / linkding 的 JSON 导出，或 URL 列表。整个导入是一个事务：无法解析的文件不会导入任何内容。",
    ),
    ("io.format", "Format", "格式"),
    ("io.auto", "Recognise", "自动识别"),
    ("io.urls", "A list of URLs", "URL 列表"),
    ("io.capture", "Capture the new links", "抓取新链接"),
    ("io.folders", "Folders become tags", "文件夹作为标签"),
    ("io.start", "Import", "导入"),
    ("io.uploading", "Sending the file…", "正在上传文件…"),
    ("io.reading", "Importing:", "正在导入："),
    ("io.added", "added", "新增"),
    ("io.existing", "already there", "已存在"),
    ("io.skipped", "skipped", "跳过"),
    ("io.export", "Export", "导出"),
    (
        "io.export_netscape",
        "Every link as a bookmarks file (Netscape HTML)",
        "全部链接导出为书签文件（Netscape HTML）",
    ),
    (
        "io.export_json",
        "Every link as JSON",
        "全部链接导出为 JSON",
    ),
    (
        "settings.network",
        "Network: connections and bans",
        "网络：连接与封禁",
    ),
    ("net.title", "Network", "网络"),
    ("net.refresh", "Refreshes every", "自动刷新间隔"),
    ("net.accepted", "accepted", "已接受"),
    (
        "net.refused_cap",
        "refused over the per-address cap",
        "超出单地址上限而拒绝",
    ),
    ("net.refused_banned", "refused banned", "封禁拒绝"),
    ("net.rate_limited", "rate-limited", "限速"),
    ("net.backoffs", "accept back-offs", "accept 退避"),
    ("net.listeners", "Listeners", "监听"),
    (
        "net.states",
        "TCP states on our ports",
        "本服务端口的 TCP 状态",
    ),
    (
        "net.peers",
        "Clients, most connections first",
        "客户端（按连接数排序）",
    ),
    ("net.sockstat", "Kernel sockets", "内核套接字"),
    ("net.bans", "Bans", "封禁"),
    ("net.ban", "Ban", "封禁"),
    ("net.unban", "Lift", "解除"),
    ("net.for", "for (e.g. 1h)", "时长（如 1h）"),
    ("net.reason", "Reason", "原因"),
    ("mail.last_poll", "Last poll", "上次收取"),
    ("mail.last_ok", "Last success", "上次成功"),
    ("mail.polls", "Polls", "收取次数"),
    ("mail.errors", "errors", "错误"),
    ("mail.ingested", "Messages ingested", "已收录邮件"),
    ("mail.links_added", "Links added", "新增链接"),
    (
        "mail.kept",
        "Messages kept in the mailbox",
        "留在邮箱中的邮件",
    ),
    ("mail.last_error", "Last error", "最近错误"),
    ("error.title", "Something went wrong", "出错了"),
    ("error.back", "Back", "返回"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_is_unique_and_translated() {
        let mut keys = std::collections::HashSet::new();
        for (k, en, zh) in CATALOGUE {
            assert!(keys.insert(*k), "duplicate key {k}");
            assert!(!en.is_empty() && !zh.is_empty(), "{k}");
        }
        assert_eq!(Lang::Zh.t("nav.tags"), "标签");
        assert_eq!(Lang::En.t("nav.tags"), "Tags");
    }

    #[test]
    fn the_language_follows_accept_language() {
        assert_eq!(Lang::negotiate("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::negotiate("en-US,en;q=0.9,zh;q=0.5"), Lang::En);
        assert_eq!(Lang::negotiate("fr-FR, zh-TW;q=0.4"), Lang::Zh);
        assert_eq!(Lang::negotiate("de"), Lang::En);
        assert_eq!(Lang::negotiate(""), Lang::En);
    }
}
