//! `--serve`: the live preview and control API of a run's cameras, started before the pipelines
//! and kept until they end.

use super::args::OutputArgs;
use vigia::publish::FollowInbox;
use vigia::sink::live_preview::LivePreview;

/// The running preview server of a run (nothing in builds without the `serve` feature).
pub struct Preview {
    #[cfg(feature = "serve")]
    server: vigia::serve::PreviewServer,
}

impl Preview {
    /// Starts the server for `cameras` when `--serve` is given; `follow` names the cameras whose
    /// followers take the page's clicks and `POST`s, with their inboxes.
    pub fn start(
        out: &OutputArgs,
        cameras: &[&str],
        follow: &[(&str, &FollowInbox)],
        quiet: bool,
    ) -> anyhow::Result<Option<Preview>> {
        let Some(addr) = &out.serve else {
            return Ok(None);
        };
        Self::serve(addr, out.serve_token.as_deref(), cameras, follow, quiet).map(Some)
    }

    #[cfg(feature = "serve")]
    fn serve(
        addr: &str,
        token: Option<&str>,
        cameras: &[&str],
        follow: &[(&str, &FollowInbox)],
        quiet: bool,
    ) -> anyhow::Result<Preview> {
        use std::sync::Arc;
        use vigia::serve::{percent_encode, PreviewConfig, PreviewServer};
        let server = PreviewServer::start(PreviewConfig {
            addr: addr.to_string(),
            token: token.map(str::to_string),
            cameras: cameras.iter().map(|c| c.to_string()).collect(),
            ..PreviewConfig::default()
        })?;
        let query = token
            .map(|t| format!("?token={}", percent_encode(t)))
            .unwrap_or_default();
        eprintln!(
            "vigia: live preview at http://{}/{query}",
            server.local_addr()
        );
        if cameras.len() > 1 && !quiet {
            eprintln!(
                "vigia: cameras listed at http://{}/api/cameras{query}",
                server.local_addr()
            );
        }
        for (camera, inbox) in follow {
            server.set_follow_control(camera, Arc::new((*inbox).clone()));
        }
        if !follow.is_empty() && token.is_some() && !quiet {
            eprintln!("vigia: click a person in the preview to follow them");
        }
        Ok(Preview { server })
    }

    #[cfg(not(feature = "serve"))]
    fn serve(
        _addr: &str,
        _token: Option<&str>,
        _cameras: &[&str],
        _follow: &[(&str, &FollowInbox)],
        _quiet: bool,
    ) -> anyhow::Result<Preview> {
        Err(vigia::Error::FeatureMissing {
            feature: "serve",
            what: "--serve (the live preview server)".into(),
        }
        .into())
    }

    /// Where camera `name` publishes its annotated frames.
    pub fn feed(&self, name: &str) -> Option<Box<dyn LivePreview>> {
        #[cfg(feature = "serve")]
        return self
            .server
            .feed(name)
            .map(|f| Box::new(f) as Box<dyn LivePreview>);
        #[cfg(not(feature = "serve"))]
        {
            let _ = name;
            None
        }
    }
}
