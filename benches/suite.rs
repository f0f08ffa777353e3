//! `cargo bench`: kiln's benchmark suite, the same library entry as `kiln bench`.
//! Default: the matmul and training-step groups with their full shapes on the `auto`
//! backend. Arguments after `--` choose otherwise:
//! `cargo bench -- [matmul|conv|softmax|norm|optim|step|all]... [--backend cpu|gpu|auto] [--quick] [--json]`.

use kiln::backend::BackendChoice;
use kiln::bench::{self, BenchOptions, Group};

fn options(args: &[String]) -> kiln::Result<(BenchOptions, bool)> {
    let mut options = BenchOptions {
        groups: Vec::new(),
        backend: BackendChoice::Auto,
        quick: false,
        precision: kiln::precision::Precision::F32,
    };
    let mut json = false;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--quick" => options.quick = true,
            "--precision" => {
                let v = it.next().map_or("", String::as_str);
                options.precision = v.parse()?;
            }
            "--json" => json = true,
            "--backend" => {
                let v = it.next().map_or("", String::as_str);
                options.backend = v.parse()?;
            }
            // What cargo and libtest-style runners pass.
            "--bench" | "--nocapture" => {}
            other if other.starts_with("--") => {}
            other => options.groups.extend(Group::parse_selection(other)?),
        }
    }
    if options.groups.is_empty() {
        options.groups = vec![Group::Matmul, Group::Step];
    }
    Ok((options, json))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = options(&args).and_then(|(options, json)| {
        let report = bench::run(&options, &mut |r| {
            eprintln!("  {} {} {:.4} ms", r.name, r.shape, r.seconds * 1e3);
        })?;
        if json {
            println!("{}", report.to_json());
        } else {
            print!("{}", report.table());
        }
        Ok(())
    });
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
