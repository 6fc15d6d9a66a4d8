//! `recserve shop ...`: the synthetic shop's commands. `shop export` writes the training data of
//! examples/ecommerce/FORMAT.md section 1, with progress on stderr and a summary line at the end.

use crate::cli::{ShopCommand, ShopExportArgs};
use anyhow::Context;
use recserve_shop::{ExportConfig, ExportProgress, Shop, ShopConfig};
use std::io::Write;
use std::time::Instant;

pub fn run(command: ShopCommand) -> anyhow::Result<()> {
    match command {
        ShopCommand::Export(args) => export(&args),
    }
}

fn export(args: &ShopExportArgs) -> anyhow::Result<()> {
    let started = Instant::now();
    let config = ShopConfig { items: args.items, users: args.users, seed: args.seed };
    let shop = Shop::new(config).context("cannot build the shop")?;
    eprintln!(
        "recserve shop: {} items, {} users, seed {}; logging {} sessions into {}",
        config.items,
        config.users,
        config.seed,
        args.sessions,
        args.out.display()
    );
    let step = (args.sessions / 10).max(1000);
    let mut next = step;
    let mut progress = |p: &ExportProgress| {
        if p.sessions_done >= next && p.sessions_done < p.sessions_total {
            next += step;
            eprintln!(
                "recserve shop: {}/{} sessions, {} impressions ({:.1} s)",
                p.sessions_done,
                p.sessions_total,
                p.impressions,
                started.elapsed().as_secs_f64()
            );
        }
    };
    let export = ExportConfig { out: args.out.clone(), sessions: args.sessions };
    let summary = shop.export(&export, &mut progress).context("shop export failed")?;
    let mut err = std::io::stderr().lock();
    writeln!(
        err,
        "recserve shop: wrote {} items, {} users, {} sessions, {} requests, {} impressions, {} clicks (CTR {:.2}%), \
         {} add-to-carts, {} purchases ({:.3}% of impressions) to {} in {:.1} s",
        summary.items,
        summary.users,
        summary.sessions,
        summary.requests,
        summary.impressions,
        summary.clicks,
        100.0 * summary.ctr(),
        summary.add_to_carts,
        summary.purchases,
        100.0 * summary.purchase_rate(),
        summary.out.display(),
        started.elapsed().as_secs_f64()
    )?;
    Ok(())
}
