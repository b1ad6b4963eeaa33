fn main() {
    println!("wgllama: under construction");
}
